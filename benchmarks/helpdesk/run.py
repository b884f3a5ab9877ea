"""django-helpdesk's `manage.py get_email` as the Python peer of the ingest benchmark.

Nothing of django-helpdesk is kept in this repository: `prepare()` makes a virtualenv
under the temporary directory (`<tmp>/mailbot-helpdesk-bench/venv`, reused by later runs;
`--fresh` rebuilds it), `pip install django-helpdesk`, and writes a minimal Django project
(SQLite, one Queue polling our Dovecot over IMAP, mail to the benchmark's SMTP sink).

    python benchmarks/helpdesk/run.py --imap-port P --smtp-port S   # on an existing mailbox
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORK = Path(tempfile.gettempdir()) / "mailbot-helpdesk-bench"

SETTINGS = """\
SECRET_KEY = "benchmark-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes",
    "django.contrib.sessions", "django.contrib.messages", "django.contrib.staticfiles",
    "django.contrib.sites", "django.contrib.humanize", "rest_framework", "helpdesk",
]
MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware",
              "django.contrib.auth.middleware.AuthenticationMiddleware",
              "django.contrib.messages.middleware.MessageMiddleware"]
ROOT_URLCONF = "benchsite.urls"
SITE_ID = 1
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {db!r}}}}}
TEMPLATES = [{{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True,
              "OPTIONS": {{"context_processors": ["django.contrib.auth.context_processors.auth",
                                                 "django.contrib.messages.context_processors.messages",
                                                 "django.template.context_processors.request"]}}}}]
USE_TZ = True
STATIC_URL = "/static/"
MEDIA_ROOT = {media!r}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
HELPDESK_TEAMS_MODE_ENABLED = False
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = "127.0.0.1"
EMAIL_PORT = {smtp_port}
DEFAULT_FROM_EMAIL = "klachten@vlaamseombudsdienst.be"
LOGGING = {{"version": 1, "disable_existing_loggers": False, "root": {{"level": "WARNING"}}}}
"""

URLS = """\
from django.urls import include, path
urlpatterns = [path("helpdesk/", include("helpdesk.urls", namespace="helpdesk"))]
"""

QUEUE = """\
from helpdesk.models import Queue
Queue.objects.all().delete()
Queue.objects.create(title="Klachten", slug="klachten", email_address="klachten@vlaamseombudsdienst.be",
    allow_email_submission=True, email_box_type="imap", email_box_host="127.0.0.1",
    email_box_port={port}, email_box_ssl=False, email_box_user={user!r}, email_box_pass={password!r},
    email_box_imap_folder="INBOX", email_box_interval=0, logging_type="none")
"""


def prepare(*, fresh: bool = False) -> Path:
    """The virtualenv's python, with django-helpdesk installed (once)."""
    venv = WORK / "venv"
    python = venv / "bin" / "python"
    if fresh and venv.exists():
        shutil.rmtree(venv)
    marker = venv / ".helpdesk-installed"
    if not marker.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", "django-helpdesk"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"pip install django-helpdesk failed: {done.stderr.strip()[-800:]}")
        marker.touch()
    return python


def project(python: Path, *, imap_port: int, user: str, password: str, smtp_port: int) -> Path:
    """A fresh Django project with an empty, migrated database and one IMAP queue."""
    root = Path(tempfile.mkdtemp(prefix="project-", dir=WORK))
    (root / "benchsite").mkdir()
    (root / "benchsite" / "__init__.py").write_text("")
    (root / "benchsite" / "settings.py").write_text(SETTINGS.format(
        db=str(root / "helpdesk.sqlite3"), media=str(root / "media"), smtp_port=smtp_port))
    (root / "benchsite" / "urls.py").write_text(URLS)
    (root / "manage.py").write_text(
        "import os, sys\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'benchsite.settings')\n"
        "from django.core.management import execute_from_command_line\nexecute_from_command_line(sys.argv)\n")
    _manage(python, root, "migrate", "-v", "0")
    _manage(python, root, "shell", "-c", QUEUE.format(port=imap_port, user=user, password=password))
    return root


def _manage(python: Path, root: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([str(python), "manage.py", *args], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args[:1])} failed: {done.stderr.strip()[-1500:]}")
    return done


def get_email(python: Path, root: Path) -> dict:
    """Time one `manage.py get_email`; tickets created and the child's peak memory."""
    started = time.monotonic()
    with open(root / "get_email.log", "wb") as log:  # a file, not a pipe nobody reads while waiting
        process = subprocess.Popen([str(python), "manage.py", "get_email", "--quiet"], cwd=root,
                                   stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    output = (root / "get_email.log").read_text(errors="replace")
    count = _manage(python, root, "shell", "-c",
                    "from helpdesk.models import Ticket, FollowUp; "
                    "print('COUNTS', Ticket.objects.count(), FollowUp.objects.count())").stdout
    count = count[count.rindex("COUNTS"):].split()[1:]
    return {"seconds": seconds, "returncode": process.returncode, "tickets": int(count[0]),
            "followups": int(count[1]), "peak_mb": usage.ru_maxrss / 1024, "output": output[-1000:]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--imap-port", type=int, required=True)
    parser.add_argument("--smtp-port", type=int, required=True)
    parser.add_argument("--user", default="klachten@example.org")
    parser.add_argument("--password", default="test-password")
    parser.add_argument("--fresh", action="store_true", help="rebuild the virtualenv")
    args = parser.parse_args()
    python = prepare(fresh=args.fresh)
    root = project(python, imap_port=args.imap_port, user=args.user, password=args.password,
                   smtp_port=args.smtp_port)
    print(json.dumps(get_email(python, root)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
