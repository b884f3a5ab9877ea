#!/usr/bin/env bash
# Install everything the tests need on a fresh Debian machine (as root), then run the suite.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v dovecot >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends dovecot-imapd >/dev/null
  # The packaged system service is not used: the tests start private instances.
  (service dovecot stop || true) >/dev/null 2>&1
fi

# A system Python that refuses pip installs (Debian's own: PEP 668 "externally managed", or no
# pip at all) gets a virtualenv in .venv, first on PATH for everything below.
externally_managed() {
  python3 -c 'import os, sys, sysconfig
sys.exit(not (sys.prefix == sys.base_prefix
              and os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))))'
}
if ! python3 -m pip --version >/dev/null 2>&1 || externally_managed; then
  if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
  fi
  [ -x .venv/bin/python3 ] || python3 -m venv .venv
  export PATH="$PWD/.venv/bin:$PATH"
fi

python3 -m pip install -q --disable-pip-version-check -e ".[test]"

# PostgreSQL is part of the development machines; start it if it is installed but down.
if command -v pg_ctlcluster >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi

bash scripts/lint-dockerfile.sh

# In parallel, one worker per core (MAILBOT_TEST_WORKERS to change it, 0 for none): most tests
# wait on Dovecot, SMTP, PostgreSQL or subprocesses. A test file stays on one worker, so its
# module-scoped servers start once; each worker has its own Dovecot and PostgreSQL schemas.
python3 -m pytest -q -n "${MAILBOT_TEST_WORKERS:-auto}" --dist loadfile "$@"
