"""Property tests: random and mutated MIME never raise anything but ParseError, and never hang.

Speed is measured in benchmarks/ (parse_bench.py, hostile.py), not here: a bound per
message failed on a loaded machine. The timeout below only catches a hang."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbot.classify import classify
from mailbot.errors import ParseError
from mailbot.parse import parse_message

DATA = Path(__file__).parent / "data"
SEEDS = [p.read_bytes() for p in sorted(DATA.rglob("*.eml"))]
# Each test takes a few seconds for its 300 examples (real mail: about a millisecond each);
# ten times that is a hang (pytest-timeout, a test dependency). The thread method ends the
# run with every stack: after the signal method's one alarm, hypothesis replays the example
# that hung, and it would hang again with no alarm left.
pytestmark = pytest.mark.timeout(60, method="thread")
TOKENS = [
    b"Content-Type: multipart/mixed; boundary=b\r\n", b"--b\r\n", b"--b--\r\n", b"Content-Type: message/rfc822\r\n",
    b"Content-Transfer-Encoding: base64\r\n", b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"Content-Type: text/html; charset=gb2312\r\n", b"Content-Type: application/ms-tnef\r\n",
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n",
    b"Content-Type: message/delivery-status\r\n", b"Subject: =?utf-8?b?w6k=?= =?x?q?=ZZ?=\r\n",
    b"From: \"=?utf-8?q?a,b?=\" <A@B\xc3\xa9.be>, ,<>\r\n", b"Van: x <y@z.be>\r\nVerzonden: maandag 3 maart 2025\r\n",
    b"---------- Forwarded message ---------\r\n", b"\r\n", b"\xff\xfe\x00", b"=?", b"<", b">" * 50,
    b"Content-Disposition: attachment; filename*=utf-8''%E2%82\r\n",
]


def _check(raw: bytes) -> None:
    try:
        classify(parse_message(raw))
    except ParseError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4000))
def test_random_bytes(raw: bytes) -> None:
    """Arbitrary bytes give a Mail or a ParseError."""
    _check(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS) | st.binary(max_size=40), max_size=60))
def test_mime_token_soup(parts: list[bytes]) -> None:
    """Random sequences of MIME headers, boundaries and markers parse without escaping errors."""
    _check(b"".join(parts))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS), st.data())
def test_mutated_fixtures(seed: bytes, data: st.DataObject) -> None:
    """Fixtures with bytes cut, flipped or inserted still parse or raise ParseError."""
    raw = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, max(len(raw) - 1, 0)))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip" and raw:
            raw[pos] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del raw[pos:pos + data.draw(st.integers(1, 200))]
        else:
            raw[pos:pos] = data.draw(st.sampled_from(TOKENS))
    _check(bytes(raw))


def test_deep_nesting_is_bounded() -> None:
    """Thousands of nested multiparts end in a Mail or ParseError, not a crash or a hang."""
    raw = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(3000))
    _check(raw)


def test_huge_header_line() -> None:
    """A megabyte-long header is handled in bounded time."""
    _check(b"Subject: " + b"=?utf-8?q?a?= " * 70000 + b"\r\n\r\nbody")
