"""Hostile input through the whole pipeline: mutated corpus mail (hypothesis), header
injection, markup in the digest, spoofed senders, and inputs built to exhaust time or
memory (run by benchmarks/hostile.py in child processes, small here)."""

from __future__ import annotations

import email
import os
import sys
from email import policy
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import DATA, complaint
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from mailbot import digest
from mailbot.classify import classify, dmarc_failed
from mailbot.db import Case, Message, Outbox
from mailbot.parse import parse_message
from mailbot.pipeline import process_files

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import hostile

SLOW = bool(os.environ.get("MAILBOT_SLOW_TESTS"))
SEEDS = [p.read_bytes() for p in sorted((DATA / "corpus").glob("*.eml")) + sorted(DATA.glob("*.eml"))]
TOKENS = [b"\r\n", b"\r\n\r\n", b"\n", b"\r", b"--", b"--b0--", b"=?utf-8?b?", b"=?x-evil?q?=C3", b"?=",
          b'Content-Type: multipart/mixed; boundary="b0"\r\n', b"Content-Type: message/rfc822\r\n",
          b"Content-Transfer-Encoding: base64\r\n", b"Content-Transfer-Encoding: x-uuencode\r\n",
          b"begin 644 x\r\n", b"\x00", b"\xff\xfe", b"\xc3", b"charset=\"unicode-1-1-utf-7\"", b"+AGEAYgBj-",
          b"Subject: ", b"From: <>\r\n", b"Auto-Submitted: auto-replied\r\n", b"VO-2026-000001", b">>>> ",
          b"-----Original Message-----\r\n", b"From: x\r\nSent: y\r\nTo: z\r\nSubject: w\r\n\r\n", b"<html><p>",
          b"Authentication-Results: mx; dmarc=fail\r\n", b"\t", b"(", b")", b"\"", b"@", b",", b";"]


@st.composite
def mutated_mail(draw: st.DrawFn) -> bytes:
    """A corpus mail with a few byte flips, insertions of MIME-ish tokens, cuts and splices."""
    raw = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "splice"]))
        at = draw(st.integers(0, max(0, len(raw) - 1)))
        if op == "flip" and raw:
            raw[at] = draw(st.integers(0, 255))
        elif op == "insert":
            raw[at:at] = draw(st.sampled_from(TOKENS)) * draw(st.integers(1, 3))
        elif op == "delete":
            del raw[at:at + draw(st.integers(1, 200))]
        elif op == "truncate":
            del raw[at:]
        else:
            other = draw(st.sampled_from(SEEDS))
            raw[at:] = other[draw(st.integers(0, max(0, len(other) - 1))):]
    return bytes(raw)


@pytest.fixture
def app(make_app, sqlite_url):
    return make_app(db_url=sqlite_url)


# Per database dialect. PostgreSQL refuses what SQLite stores (NUL in text), so the fuzzing
# runs on both; fewer examples there, as a mail costs more (the case its fuzzing found is
# kept in the deterministic control-character test below).
EXAMPLES = {"sqlite": 1500 if SLOW else 120, "postgresql": 500 if SLOW else 60}


def test_mutated_corpus_never_breaks_the_pipeline(make_app, db_url):
    """Any mutation of a corpus mail is processed, found a duplicate, or quarantined with a
    reason inside the transaction: the pipeline itself never raises, on either database."""
    app = make_app(db_url=db_url)

    @settings(max_examples=EXAMPLES[app.engine.dialect.name],
              deadline=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(raw=mutated_mail())
    def mutated_mail_is_handled(raw: bytes) -> None:
        with app.sessions.begin() as session:
            outcome = app.intake.process(session, raw)
        assert outcome.disposition in ("processed", "duplicate", "quarantined")

    mutated_mail_is_handled()


# -- control characters ----------------------------------------------------------------------

def _headed(i: int, *, sender: str = "Jan Peeters <jan{i}@example.be>", subject: str = "Klacht over mijn studietoelage",
            message_id: str = "<ctl{i}@example.be>", extra: str = "") -> bytes:
    head = (f"From: {sender.format(i=i)}\r\nTo: klachten@vlaamseombudsdienst.be\r\nSubject: {subject}\r\n"
            f"Message-ID: {message_id.format(i=i)}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0100\r\n{extra}")
    return (head + "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            "Geachte, ik heb een klacht over mijn studietoelage bij het departement.\r\n").encode()


# What a header with control characters in it is stored as: the field, and its stored value.
CONTROLLED = {
    "nul-in-from-address": (_headed(1, sender="Jan Peeters <\x00jan1@example.be>"), "from_email", "jan1@example.be"),
    "controls-in-from-address": (_headed(2, sender="<jan\x01\x1b2@exa\x7fmple.be>"), "from_email", "jan2@example.be"),
    "nul-in-display-name": (_headed(3, sender='"Jan\x00 Pee\x07ters" <jan3@example.be>'), "from_name", "Jan Peeters"),
    "nul-in-encoded-name": (_headed(4, sender="=?utf-8?q?Jan_Pe=00eters?= <jan4@example.be>"), "from_name", "Jan Peeters"),
    "nul-in-subject": (_headed(5, subject="Klacht\x00 over mijn \x1bstudietoelage"), "subject",
                       "Klacht over mijn studietoelage"),
    "nul-in-message-id": (_headed(6, message_id="<ctl\x006@example.be>"), "message_id", "ctl6@example.be"),
    "nul-in-in-reply-to": (_headed(7, extra="In-Reply-To: <eerder\x00@example.be>\r\n"), "in_reply_to",
                           "eerder@example.be"),
    "nul-in-references": (_headed(8, extra="References: <a\x00@example.be> <b\x01@example.be>\r\n"), "references",
                          ["a@example.be", "b@example.be"]),
}
# The mail hypothesis found: an abuse report with a NUL in its From address.
ARF_WITH_NUL = (DATA / "corpus" / "mimekit__feedback-report.eml").read_bytes().replace(
    b"From: <abusedesk@", b"From: <\x00abusedesk@", 1)


def test_control_characters_in_headers_never_reach_the_database(make_app, db_url):
    """NUL (which PostgreSQL refuses in text) and other control characters in an address, a
    display name, the subject or a Message-ID are dropped when the mail is read: each mail is
    processed like any other and stored without them, on either database. The last one is
    the mail hypothesis found: it failed the whole batch on PostgreSQL (a DataError from the
    undeliverable-address look-up)."""
    app = make_app(db_url=db_url)
    outcomes = process_files(app.intake, [raw for raw, _, _ in CONTROLLED.values()] + [ARF_WITH_NUL])
    assert [(o.disposition, o.kind) for o in outcomes] == (
        [("processed", "new_complaint")] * len(CONTROLLED) + [("processed", "automatic")])
    with app.sessions() as session:
        messages = session.execute(select(Message).where(Message.direction == "in")
                                   .order_by(Message.id)).scalars().all()
        stored = {case: getattr(m, field) for (case, (_, field, _)), m in zip(CONTROLLED.items(), messages)}
        assert stored == {case: value for case, (_, _, value) in CONTROLLED.items()}
        assert messages[-1].from_email == "abusedesk@example.com"
        recipients = session.execute(select(Outbox.recipient)).scalars().all()
    assert sorted(recipients) == sorted(m.from_email for m in messages[:-1])


# -- header injection ------------------------------------------------------------------------

INJECTIONS = {
    "encoded-crlf-subject": ("Subject: =?utf-8?q?Klacht=0D=0ABcc:_victim@evil.example=0D=0AX-Injected:_1?=\r\n", ""),
    "encoded-crlf-name": ("Subject: Klacht\r\n",
                          "=?utf-8?b?SmFuDQpCY2M6IHZpY3RpbUBldmlsLmV4YW1wbGUNClgtSW5qZWN0ZWQ6IDE=?="),
    "bare-cr-subject": ("Subject: Klacht\rBcc: victim@evil.example\rX-Injected: 1\r\n", ""),
    "nul-and-lf-subject": ("Subject: =?utf-8?q?Klacht=00=0AX-Injected:_1?=\r\n", ""),
    "folded-subject": ("Subject: Klacht\r\n X-Injected: 1\r\n\tBcc: victim@evil.example\r\n", ""),
    "encoded-crlf-reply-to": ("Subject: Klacht\r\nReply-To: =?utf-8?q?A=0D=0AX-Injected:_1?= <jan@example.be>\r\n", ""),
    "unicode-line-separators": ("Subject: =?utf-8?q?Klacht=E2=80=A8X-Injected:_1=C2=85Bcc:_x@evil.example?=\r\n", ""),
}


def _injected(subject_header: str, name: str, i: int) -> bytes:
    display = name or "Jan Peeters"
    return (f"From: {display} <burger{i}@example.be>\r\nTo: klachten@vlaamseombudsdienst.be\r\n{subject_header}"
            f"Message-ID: <inj{i}@example.be>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0100\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            "Geachte, ik heb een klacht over mijn studietoelage bij het departement.\r\n").encode()


def test_header_injection_never_reaches_an_outgoing_header(app):
    """CR/LF, NUL and line separators smuggled in subjects, display names and encoded words
    never start a header of their own in any reply we queue."""
    raws = [_injected(subject, name, i) for i, (subject, name) in enumerate(INJECTIONS.values())]
    outcomes = process_files(app.intake, raws)
    assert all(o.disposition == "processed" for o in outcomes)
    with app.sessions() as session:
        mimes = session.execute(select(Outbox.mime)).scalars().all()
    assert len(mimes) == len(raws)
    for mime in mimes:
        head = mime.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in mime else mime.split(b"\n\n", 1)[0]
        names = [line.split(b":", 1)[0].lower() for line in head.splitlines() if line and line[:1] not in b" \t"]
        assert b"x-injected" not in names and b"bcc" not in names, head
        assert b"\r" not in head.replace(b"\r\n", b"") and b"\x00" not in head
        msg = email.message_from_bytes(mime, policy=policy.default)
        assert msg["X-Injected"] is None and msg["Bcc"] is None
        assert all("\n" not in str(v) and "\r" not in str(v) for v in msg.values())
        assert len(msg.get_all("To")) == 1


# -- markup in the digest --------------------------------------------------------------------

class _Tags(HTMLParser):
    """Collects what a browser would run or load from a document."""

    def __init__(self) -> None:
        super().__init__()
        self.active: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "iframe", "object", "embed", "img", "form"):
            self.active.append(tag)
        for name, value in attrs:
            if name.startswith("on") or (value or "").strip().lower().startswith("javascript:"):
                self.active.append(f"{tag} {name}={value}")


def test_markup_in_mail_is_inert_in_the_digest(app):
    """Script and markup in subjects, names and bodies are escaped in the digest HTML."""
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    raws = [complaint(sender="a@example.be", name=f'"{evil}"', subject=f"Klacht {evil}"),
            (f"From: b@example.be\r\nTo: klachten@vlaamseombudsdienst.be\r\nSubject: =?utf-8?q?"
             f"=3Cscript=3Ealert(3)=3C/script=3E?=\r\nMessage-ID: <dg2@example.be>\r\n"
             f"Content-Type: text/html; charset=utf-8\r\n\r\n<p>Klacht</p>{evil}<iframe src=javascript:x>\r\n").encode(),
            b"\x00\xff garbage that is quarantined " + evil.encode()]
    process_files(app.intake, raws)
    rendered = digest.build(app.sessions, app.settings, app.local_today())
    assert "&lt;script&gt;" in rendered.html  # the subjects are there, escaped
    tags = _Tags()
    tags.feed(rendered.html)
    assert not tags.active, tags.active
    assert "\n" not in rendered.subject and "\r" not in rendered.subject


# -- spoofed senders -------------------------------------------------------------------------

def _with_results(raw: bytes, *results: str) -> bytes:
    return b"".join(f"Authentication-Results: {r}\r\n".encode() for r in results) + raw


def test_dmarc_fail_in_our_topmost_results_marks_the_sender_spoofed():
    """dmarc=fail in the topmost Authentication-Results sets facts.spoofed with a reason; a
    fail further down (added before us), or only inside a comment, does not."""
    base = complaint(subject="Wat is de stand van zaken?")
    ours = "mx.vlaamseombudsdienst.be; spf=softfail smtp.mailfrom=example.be; dmarc=fail (p=none) header.from=example.be"
    spoofed = classify(parse_message(_with_results(base, ours)))
    assert spoofed.facts.spoofed and any("dmarc=fail" in r for r in spoofed.reasons)
    below = _with_results(base, "mx.vlaamseombudsdienst.be; dmarc=pass header.from=example.be", "relay; dmarc=fail")
    assert not classify(parse_message(below)).facts.spoofed
    comment = _with_results(base, "mx.vlaamseombudsdienst.be; dmarc=pass (was dmarc=fail upstream)")
    assert not dmarc_failed(parse_message(comment))
    assert not classify(parse_message(base)).facts.spoofed


def test_spoofed_status_request_gets_no_case_details(app):
    """A status request in the citizen's name that fails DMARC gets no case details: no
    `status` reply, and the case is flagged `spoofed_sender` for staff."""
    process_files(app.intake, [complaint(sender="jan.peeters@example.be", message_id="<orig@example.be>")])
    with app.sessions() as session:
        ref = session.execute(select(Case.ref)).scalar_one()
    status = complaint(sender="jan.peeters@example.be", subject=f"Re: {ref} stand van zaken",
                       body="Wat is de stand van zaken in mijn dossier?")
    process_files(app.intake, [_with_results(status, "mx.vlaamseombudsdienst.be; dmarc=fail header.from=example.be")])
    with app.sessions() as session:
        templates = session.execute(select(Outbox.template).order_by(Outbox.id)).scalars().all()
        flags = session.execute(select(Case.flags)).scalar_one()
        kinds = session.execute(select(Message.kind).where(Message.direction == "in")
                                .order_by(Message.id)).scalars().all()
    assert kinds[-1] == "status_request"
    assert "status" not in templates and "spoofed_sender" in flags


# -- time and memory -------------------------------------------------------------------------

BOUNDED = list(hostile.CASES)
SCALE = 1.0 if SLOW else 0.05


def test_hostile_inputs_are_handled_in_bounded_time_and_memory():
    """Each hostile input (huge, many parts, deep, long header, zip bomb, regex torture...) is
    processed or quarantined in a child process within seconds and bounded memory."""
    results = hostile.run_all(BOUNDED, SCALE, timeout=120 if SLOW else 30, together=not SLOW)
    print("\n" + hostile.table(results))
    by_name = {r["input"]: r for r in results}
    for r in results:
        assert r["disposition"] in ("processed", "quarantined"), r
        assert r["seconds"] < (60 if SLOW else 5), r
        # Added memory: linear in the input, never a blow-up (the zip bomb inflates to 1 GB).
        # Today text that decodes to non-Latin characters costs up to ~40 copies (5 MB of
        # binary garbage: +204 MB; see benchmarks/README.md): bounded, not small.
        assert r["peak_mb"] < 100 + 50 * r["bytes"] / 2**20, r
    assert by_name["empty"]["disposition"] == "quarantined" and by_name["empty"]["reason"]
    if SLOW:
        assert by_name["big_message"]["disposition"] == "quarantined"
        assert "exceeds the limit" in by_name["big_message"]["reason"]


def test_one_long_line_body_is_handled_in_bounded_time():
    """A body that is one 60 kB line without spaces is processed within 3 seconds (measured
    in the child around the processing; the child's start-up, slow on a loaded machine, is
    given 30 s and not counted)."""
    results = hostile.run_all(["long_line"], 0.006, timeout=30)
    assert results[0]["disposition"] == "processed" and results[0]["seconds"] < 3, results


# -- pathological regular expressions in the routing rules -----------------------------------

HOSTILE_RULE = """\
rules:
  - name: hostile-regex
    description: An administrator's pattern that may backtrack on crafted subjects.
    when:
      subject_regex: '{pattern}'
    then:
      tags: [hostile]
    continue: true
"""


@pytest.mark.parametrize(("pattern", "subject"), [
    (r"(a+)+$", "a" * 5000 + "!"),
    (r"(?:k|kl|kla)+$", "kla" * 3000 + "!"),  # ~1 s untimed; longer words trip normalize.words
    (r"^(\w+\s?)*$", "klacht " * 20_000 + "!"),  # spaced: one long word trips normalize.words
    (r"(.*a){12}", "a" * 20_000 + "b"),
], ids=["nested-plus", "alternation", "words", "dot-star"])
def test_backtracking_rule_is_refused_or_bounded(make_app, sqlite_url, tmp_path, pattern, subject):
    """A routing pattern that backtracks catastrophically is refused when the rules load; one
    that slips past the load-time probes is cut off by the per-search timeout."""
    import shutil
    import time

    from mailbot.conditions import REGEX_TIMEOUT
    from mailbot.errors import MailbotError

    rules = tmp_path / "rules"
    shutil.copytree(DATA.parents[1] / "rules", rules)
    text = (rules / "routing.yaml").read_text()
    (rules / "routing.yaml").write_text(text.replace("rules:\n", HOSTILE_RULE.format(pattern=pattern), 1))
    try:
        app = make_app(db_url=sqlite_url, rules_dir=str(rules))
    except MailbotError as err:
        assert "catastrophic backtracking" in str(err) and "routing.yaml:" in str(err)
        return
    started = time.monotonic()
    outcomes = process_files(app.intake, [complaint(subject=subject)])
    assert outcomes[0].disposition == "processed"
    assert time.monotonic() - started < 4 * REGEX_TIMEOUT + 2
