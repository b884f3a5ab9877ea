"""Our hand-written parsing steps measured against the maintained libraries (issue 3).

On the same inputs, for four tasks:

1. forwards   — mailbot.forwards (via parse_message) vs email-forward-parser (import name
                `emailforwardparser`) vs quotequail.unwrap (it labels forwards too);
                mail-parser-reply has no notion of a forward and is recorded as such.
2. quotes     — Mail.new_text (mailbot.quotes) vs quotequail.unwrap / quotequail.quote vs
                mail-parser-reply (EmailReplyParser, languages nl/fr/en/de).
3. bounces    — mailbot.automatic.parse_dsn (Mail.bounce / Classification.bounce) vs
                flufl.bounce (all_failures, scan_message).
4. HTML→text  — mailbot.htmltext (inscriptis + script/style pre-strip) vs bare inscriptis vs
                html2text.

Ground truth: the corpus's labels.tsv (has_forwarded_content, is_auto_reply_or_bounce), talon's
expected reply texts (`.reply_text`; talon's own test expects "Hello" for the other standard
replies), and what tests/test_forwards.py, test_quotes.py and test_automatic.py expect of our
fixtures in tests/data/. Every candidate gets the same bytes (after the BOM / leading-blank-line
cleanup parse_message does) or the same decoded text (Mail.text), so the comparison measures the
algorithm, not our MIME decoding.

    python benchmarks/library_comparison.py [--corpus DIR] [--rounds N] [--out FILE]

Prints a table per task and writes benchmarks/results/library-comparison.json.
"""

from __future__ import annotations

import argparse
import csv
import email
import importlib
import importlib.metadata
import json
import logging
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from email.policy import compat32
from email.utils import parseaddr
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mailbot import automatic, forwards, quotes
from mailbot.classify import classify
from mailbot.htmltext import html_to_text
from mailbot.parse import parse_message

DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus"
DATA = ROOT / "tests" / "data"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "library-comparison.json"

# --------------------------------------------------------------------------- libraries

LIBRARIES = {  # PyPI name -> import name
    "email-forward-parser": "emailforwardparser",
    "mail-parser-reply": "mailparser_reply",
    "quotequail": "quotequail",
    "flufl.bounce": "flufl.bounce",
    "html2text": "html2text",
    "inscriptis": "inscriptis",
    "rapidfuzz": "rapidfuzz",
}


def load_libraries() -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    mods: dict[str, Any] = {}
    info: dict[str, dict[str, str]] = {}
    for dist, name in LIBRARIES.items():
        try:
            mods[dist] = importlib.import_module(name)
            info[dist] = {"import": name, "version": importlib.metadata.version(dist), "status": "ok"}
        except Exception as err:  # noqa: BLE001 — record and go on without it
            info[dist] = {"import": name, "status": "unavailable", "error": f"{type(err).__name__}: {err}"}
    return mods, info


# --------------------------------------------------------------------------- inputs

# tests/test_forwards.py CASES: file, expected original sender address, expected subject
FWD_FIXTURES = [
    ("outlook_fwd_nl.eml", "info@wonen.vlaanderen.be", "Uw aanvraag huurpremie"),
    ("outlook_fwd_fr.eml", "contact@logement.example.be", "Votre demande de prime"),
    ("outlook_fwd_de.eml", "post@eupen.example.be", "Ihr Antrag"),
    ("html_only_outlook_nl.eml", "info@zottegem.example.be", "Uw vraag over de afvalbelasting"),
    ("gmail_fwd_nl.eml", "info@stad.gent", "Beslissing over uw dossier"),
    ("gmail_fwd_fr.eml", "info@mouscron.example.be", "Décision"),
    ("gmail_fwd_en.eml", "office@city.example.org", "Decision"),
    ("apple_fwd_nl.eml", "klantendienst@delijn.be", "Uw klacht"),
    ("apple_fwd_fr.eml", "service@sncb.example.be", "Votre plainte"),
    ("thunderbird_fwd_nl.eml", "info@vlabel.be", "Aanslagbiljet"),
    ("thunderbird_fwd_fr.eml", "service@public.example.be", "Avis"),
    ("thunderbird_fwd_de.eml", "amt@example.de", "Bescheid"),
    ("attached_rfc822.eml", "klantendienst@vdab.be", "Uw inschrijving – beslissing"),
    ("toplevel_rfc822.eml", "info@kindengezin.be", "Uw groeipakket"),
]
NESTED_FIXTURE = ("nested_fwd_nl.eml", ["an@example.be", "boetes@parkeren.antwerpen.be"])
# replies, bounces and out-of-office fixtures: nothing forwarded in them
NO_FWD_FIXTURES = ["reply_nl.eml", "reply_fr.eml", "reply_de.eml", "reply_en_bottom.eml",
                   "bounce_our_reply.eml", "delayed_dsn.eml", "ooo_nl.eml", "ooo_fr.eml", "ooo_de.eml"]

# tests/test_quotes.py: file, text that must stay, text of the quoted history that must go
QUOTE_FIXTURES = [
    ("reply_nl.eml", "stand van zaken", "goed ontvangen"),
    ("reply_fr.eml", "Où en est mon dossier", "bien reçu"),
    ("reply_de.eml", "wie ist der Stand", "erhalten"),
    ("reply_en_bottom.eml", "Please reply to my new address", "we received"),
    ("outlook_fwd_nl.eml", "niet mee eens", "geweigerd"),
]

# tests/test_quotes.py: a signature (mobile footer, "-- " delimiter) is not new text either
SIGNATURE_FIXTURES = [("reply_nl.eml", "Verzonden vanaf mijn iPhone"), ("reply_en_bottom.eml", "Jan Peeters")]

# tests/test_automatic.py: file, failed recipient, permanent?
BOUNCE_FIXTURES = [("bounce_our_reply.eml", "jan.peters@example.be", True),
                   ("delayed_dsn.eml", "slow@example.org", False)]

# HTML probe with known script/style text (none of the corpus html_only files has any)
HTML_PROBE = (
    "<html><head><title>probe</title><style>.leakStyleMarker { color: red }</style>"
    "<script>var leakScriptMarker = 'x'; alert(leakScriptMarker);</script></head>"
    "<body><p>Beste, <b>zie</b> hieronder.</p><table><tr><td>Dossier</td><td>VO-1</td></tr></table>"
    "<script type='text/javascript'>document.write('leakInlineScript')</script>"
    "<ul><li>een</li><li>twee</li></ul></body></html>"
)
PROBE_VISIBLE = ["Beste", "hieronder", "Dossier", "VO-1", "twee"]


def clean(raw: bytes) -> bytes:
    """The same cleanup parse_message does before parsing, so every candidate sees the same bytes."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    return raw.lstrip(b"\r\n")


def load_corpus(corpus: Path) -> list[dict[str, Any]]:
    rows = []
    with (corpus / "labels.tsv").open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            path = corpus / row["file"]
            if path.is_file():
                row["raw"] = path.read_bytes()
                rows.append(row)
    return rows


def fixture(name: str) -> bytes:
    return (DATA / name).read_bytes()


# --------------------------------------------------------------------------- helpers

TIME_BUDGET = 0.1  # seconds of timed calls per input at most, so slow candidates stay affordable


def timed(fn: Callable[[Any], Any], arg: Any, rounds: int) -> tuple[Any, float, str | None]:
    """(result of one untimed call, median seconds of up to `rounds` more calls, error).

    The median resists other work on a shared machine; a call that raises still counts its time;
    the error reported is the first call's."""
    error = None
    try:
        result = fn(arg)
    except Exception as err:  # noqa: BLE001 — a library failing on real mail is a result
        result, error = None, f"{type(err).__name__}: {str(err)[:120]}"
    durations: list[float] = []
    while len(durations) < max(rounds, 1) and (not durations or sum(durations) < TIME_BUDGET):
        start = time.perf_counter()
        try:
            fn(arg)
        except Exception:  # noqa: BLE001, S110 — already reported by the first call
            pass
        durations.append(time.perf_counter() - start)
    return result, statistics.median(durations), error


def norm_ws(text: str | None) -> str:
    return " ".join((text or "").split())


def email_of(value: str | None) -> str:
    return parseaddr(value or "")[1].strip().lower()


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def us(seconds: float) -> float:
    return round(seconds * 1e6, 1)


# --------------------------------------------------------------------------- 1. forwards
# Each candidate: bytes -> {"detected": bool, "senders": [addr, ...], "subject": str}


def fwd_ours(raw: bytes) -> dict[str, Any]:
    mail = parse_message(raw)
    return {"detected": bool(mail.forwarded),
            "senders": [f.sender.email if f.sender else "" for f in mail.forwarded],
            "subject": mail.forwarded[0].subject if mail.forwarded else ""}


def make_fwd_candidates(mods: dict[str, Any], texts: dict[bytes, tuple[str, str]]) -> dict[str, Any]:
    """Candidates by name; a value is a function or, for an unusable library, the reason string."""
    cands: dict[str, Any] = {"mailbot (parse_message: MIME + inline)": fwd_ours}

    def ours_inline(raw: bytes) -> dict[str, Any]:
        text, subject = texts[raw]
        found = forwards.find_inline(text, subject)
        return {"detected": bool(found), "senders": [f.sender.email if f.sender else "" for f in found],
                "subject": found[0].subject if found else ""}

    cands["mailbot forwards.find_inline (decoded text)"] = ours_inline

    efp = mods.get("email-forward-parser")
    if efp is None:
        cands["email-forward-parser (client, raw message)"] = "not importable"
        cands["email-forward-parser (decoded text)"] = "not importable"
    else:
        from emailforwardparser import forward_parser as fp  # type: ignore[import-untyped]
        from emailforwardparser.client import EmailParserClient  # type: ignore[import-untyped]

        client = EmailParserClient()

        def efp_client(raw: bytes) -> dict[str, Any]:
            source = raw.decode("utf-8", errors="replace")
            meta = client.get_original_metadata(source)
            # get_original_metadata reports an attached message/rfc822 as forwarded=False with the
            # attachment's metadata; the client's own attachment finder tells that case apart.
            attached = not meta.forwarded and bool(client._get_eml_attachment(client._parse_message(source)))
            detected = meta.forwarded or attached
            return {"detected": detected, "senders": [meta.email.from_.address.lower()] if detected else [],
                    "subject": meta.email.subject if detected else ""}

        def efp_text(raw: bytes) -> dict[str, Any]:
            text, subject = texts[raw]
            meta = fp.get_forwarded_metadata(text.strip(), subject.strip() or None)
            return {"detected": meta.forwarded,
                    "senders": [meta.email.from_.address.lower()] if meta.forwarded else [],
                    "subject": meta.email.subject if meta.forwarded else ""}

        cands["email-forward-parser (client, raw message)"] = efp_client
        cands["email-forward-parser (decoded text)"] = efp_text

    qq = mods.get("quotequail")
    if qq is None:
        cands["quotequail.unwrap (decoded text)"] = "not importable"
    else:
        def qq_unwrap(raw: bytes) -> dict[str, Any]:
            found = qq.unwrap(texts[raw][0])
            is_fwd = bool(found) and found.get("type") == "forward"
            return {"detected": is_fwd, "senders": [email_of(found.get("from"))] if is_fwd else [],
                    "subject": found.get("subject", "") if is_fwd else ""}

        cands["quotequail.unwrap (decoded text)"] = qq_unwrap

    if mods.get("mail-parser-reply") is None:
        cands["mail-parser-reply"] = "not importable"
    else:
        cands["mail-parser-reply"] = ("no forward API: EmailReplyParser splits a body into replies at "
                                      "reply headers; it has no forward flag or original sender/subject")
    return cands


def score_forwards(fn: Callable[[bytes], dict[str, Any]], labelled: list[dict[str, Any]], fixtures: dict[str, bytes],
                   negatives: dict[str, bytes], rounds: int) -> dict[str, Any]:
    times: list[float] = []
    slowest: list[tuple[float, str]] = []
    errors: list[str] = []

    def run(raw: bytes, label: str) -> dict[str, Any] | None:
        out, secs, err = timed(fn, raw, rounds)
        times.append(secs)
        slowest.append((secs, label))
        if err:
            errors.append(f"{label}: {err}")
        return out

    tp = fp_ = fn_ = tn = 0
    misses: list[str] = []
    for row in labelled:
        out = run(clean(row["raw"]), row["file"])
        got, want = bool(out and out["detected"]), row["has_forwarded_content"] == "yes"
        tp += got and want
        tn += not got and not want
        fp_ += got and not want
        fn_ += want and not got
        if got != want:
            misses.append(f"{'FP' if got else 'FN'} {row['file']}")
    fx_detected = fx_sender = fx_subject = 0
    fx_fail: list[str] = []
    for fname, sender, subject in FWD_FIXTURES:
        out = run(fixtures[fname], fname) or {"detected": False, "senders": [], "subject": ""}
        ok_s = bool(out["senders"]) and out["senders"][0] == sender
        ok_j = norm_ws(out["subject"]) == norm_ws(subject)
        fx_detected += bool(out["detected"])
        fx_sender += ok_s
        fx_subject += ok_j
        if not (ok_s and ok_j):
            fx_fail.append(f"{fname}: got {out['senders'][:1]} / {norm_ws(out['subject'])[:50]!r}")
    nested = run(fixtures[NESTED_FIXTURE[0]], NESTED_FIXTURE[0]) or {"senders": []}
    neg_fp = [n for n, raw in negatives.items() if (run(raw, n) or {}).get("detected")]
    total = len(labelled)
    return {
        "available": True,
        "corpus_labelled": total,
        "corpus_tp": tp, "corpus_fp": fp_, "corpus_fn": fn_, "corpus_tn": tn,
        "corpus_accuracy": round((tp + tn) / total, 3) if total else None,
        "corpus_recall": round(tp / (tp + fn_), 3) if tp + fn_ else None,
        "corpus_precision": round(tp / (tp + fp_), 3) if tp + fp_ else None,
        "corpus_misclassified": misses,
        "fixtures": len(FWD_FIXTURES),
        "fixtures_detected": fx_detected,
        "fixtures_sender_ok": fx_sender,
        "fixtures_subject_ok": fx_subject,
        "fixtures_failed": fx_fail,
        "nested_all_senders_in_order": nested["senders"] == NESTED_FIXTURE[1],
        "nested_got": nested["senders"],
        "negative_fixtures": len(negatives),
        "negative_fixtures_false_positives": neg_fp,
        "errors": errors,
        "us_per_message": us(mean(times)),
        "us_median": us(median(times)),
        "us_max": us(max(times, default=0.0)),
        "slowest_inputs_us": {label: us(secs) for secs, label in sorted(slowest, reverse=True)[:3]},
    }


def bench_forwards(mods: dict[str, Any], corpus: list[dict[str, Any]], rounds: int) -> dict[str, Any]:
    labelled = [r for r in corpus if r["has_forwarded_content"] in ("yes", "no")]
    fixtures = {name: clean(fixture(name)) for name, *_ in FWD_FIXTURES}
    fixtures[NESTED_FIXTURE[0]] = clean(fixture(NESTED_FIXTURE[0]))
    negatives = {name: clean(fixture(name)) for name in NO_FWD_FIXTURES}
    inputs = [clean(r["raw"]) for r in labelled] + list(fixtures.values()) + list(negatives.values())
    texts = {}
    for raw in inputs:
        try:
            mail = parse_message(raw)
            texts[raw] = (mail.text, mail.subject)
        except Exception:  # noqa: BLE001
            texts[raw] = ("", "")

    results: dict[str, Any] = {}
    for name, fn in make_fwd_candidates(mods, texts).items():
        if isinstance(fn, str):
            results[name] = {"available": False, "reason": fn}
        else:
            results[name] = score_forwards(fn, labelled, fixtures, negatives, rounds)
    return results


# --------------------------------------------------------------------------- 2. quotes

_SIG = re.compile(r"^(--\s*|Sent (from|with) .*)$")


def strip_signature(text: str) -> str:
    """Cut at a signature line, so a talon expectation (which keeps signatures) can be compared
    with a candidate that drops them."""
    lines = (text or "").splitlines()
    for i, line in enumerate(lines):
        if _SIG.match(line.strip()) and i > 0:
            return "\n".join(lines[:i]).strip()
    return (text or "").strip()


def make_quote_candidates(mods: dict[str, Any]) -> dict[str, Any]:
    cands: dict[str, Any] = {"mailbot quotes.new_text": quotes.new_text}
    qq = mods.get("quotequail")
    if qq is None:
        cands["quotequail.unwrap"] = cands["quotequail.quote"] = "not importable"
    else:
        def qq_unwrap(text: str) -> str:
            found = qq.unwrap(text)
            if not found:
                return text.strip()
            return "\n\n".join(found[k] for k in ("text_top", "text_bottom") if found.get(k)).strip()

        def qq_quote(text: str) -> str:
            return "\n".join(part for shown, part in qq.quote(text) if shown).strip()

        cands["quotequail.unwrap"] = qq_unwrap
        cands["quotequail.quote"] = qq_quote
    mpr = mods.get("mail-parser-reply")
    if mpr is None:
        cands["mail-parser-reply latest_reply"] = cands["mail-parser-reply body"] = "not importable"
    else:
        parser = mpr.EmailReplyParser(languages=["nl", "fr", "en", "de"])

        def mpr_latest(text: str) -> str:
            return (parser.parse_reply(text) or "").strip()

        def mpr_body(text: str) -> str:  # the first reply without its signature/disclaimer
            replies = parser.read(text).replies
            return replies[0].body.strip() if replies else ""

        cands["mail-parser-reply latest_reply"] = mpr_latest
        cands["mail-parser-reply body"] = mpr_body
    return cands


def bench_quotes(mods: dict[str, Any], corpus: list[dict[str, Any]], corpus_dir: Path, rounds: int) -> dict[str, Any]:
    ratio = mods["rapidfuzz"].fuzz.ratio if "rapidfuzz" in mods else None
    talon = []  # (file, decoded text, expected)
    for row in corpus:
        if not Path(row["file"]).name.startswith("talon__"):
            continue
        expected_file = corpus_dir / row["file"].replace(".eml", ".reply_text")
        expected = expected_file.read_text(encoding="utf-8").strip() if expected_file.is_file() else "Hello"
        talon.append((row["file"], parse_message(row["raw"]).text, expected))
    ours_fx = [(name, parse_message(fixture(name)).text, kept, dropped) for name, kept, dropped in QUOTE_FIXTURES]
    sig_fx = [(name, parse_message(fixture(name)).text, signature) for name, signature in SIGNATURE_FIXTURES]

    results: dict[str, Any] = {}
    for name, fn in make_quote_candidates(mods).items():
        if isinstance(fn, str):
            results[name] = {"available": False, "reason": fn}
            continue
        times: list[float] = []
        errors: list[str] = []
        exact = normalised = sig_insensitive = 0
        ratios: list[float] = []
        sig_ratios: list[float] = []
        talon_out: dict[str, str] = {}
        for file, text, expected in talon:
            out, secs, err = timed(fn, text, rounds)
            times.append(secs)
            if err:
                errors.append(f"{file}: {err}")
            out = out or ""
            talon_out[file] = out[:200]
            exact += out.strip() == expected
            normalised += norm_ws(out) == norm_ws(expected)
            sig_insensitive += norm_ws(strip_signature(out)) == norm_ws(strip_signature(expected))
            if ratio:
                ratios.append(ratio(norm_ws(out), norm_ws(expected)))
                sig_ratios.append(ratio(norm_ws(strip_signature(out)), norm_ws(strip_signature(expected))))
        fx_pass = 0
        fx_fail: list[str] = []
        for file, text, kept, dropped in ours_fx:
            out, secs, err = timed(fn, text, rounds)
            times.append(secs)
            if err:
                errors.append(f"{file}: {err}")
            out = out or ""
            ok = kept in out and dropped not in out
            fx_pass += ok
            if not ok:
                fx_fail.append(f"{file}: kept={kept in out} dropped={dropped not in out}")
        sig_dropped = [file for file, text, signature in sig_fx if signature not in (fn(text) or "")]
        results[name] = {
            "available": True,
            "talon_cases": len(talon),
            "talon_exact": exact,
            "talon_normalised_ws": normalised,
            "talon_signature_insensitive": sig_insensitive,
            "talon_mean_ratio": round(mean(ratios), 1) if ratios else None,
            "talon_mean_ratio_signature_insensitive": round(mean(sig_ratios), 1) if sig_ratios else None,
            "talon_outputs": talon_out,
            "fixtures": len(ours_fx),
            "fixtures_pass": fx_pass,
            "fixtures_failed": fx_fail,
            "signature_fixtures": len(sig_fx),
            "signature_dropped": len(sig_dropped),
            "errors": errors,
            "us_per_message": us(mean(times)),
            "us_median": us(median(times)),
            "us_max": us(max(times, default=0.0)),
        }
    return results


# --------------------------------------------------------------------------- 3. bounces

_REF_RCPT = re.compile(rb"^(?:Final-Recipient|Original-Recipient|X-Failed-Recipients)\s*:\s*(?:[\w.-]+\s*;)?\s*<?([^\s<>;]+@[^\s<>;]+?)>?\s*$",
                       re.IGNORECASE | re.MULTILINE)


def reference_recipients(raw: bytes) -> set[str]:
    """Addresses a DSN names as failed, read straight off the raw bytes (a reference, not a parser)."""
    return {m.group(1).decode("latin-1").lower().strip(".,") for m in _REF_RCPT.finditer(raw)}


def is_bounce_row(row: dict[str, Any]) -> bool:
    basis = row["auto_basis"].lower()
    return row["is_auto_reply_or_bounce"] == "yes" and ("delivery-status" in basis or "bounce sample" in basis)


def bench_bounces(mods: dict[str, Any], corpus: list[dict[str, Any]], rounds: int) -> dict[str, Any]:
    # (label, cleaned raw, expected bounce?, reference recipients, fixture (recipient, permanent) or None)
    cases: list[tuple[str, bytes, bool, set[str], tuple[str, bool] | None]] = []
    for row in corpus:
        raw = clean(row["raw"])
        cases.append((row["file"], raw, is_bounce_row(row), reference_recipients(raw), None))
    for name, rcpt, is_permanent in BOUNCE_FIXTURES:
        raw = clean(fixture(name))
        cases.append((f"tests/data/{name}", raw, True, {rcpt}, (rcpt, is_permanent)))
    for name in ("ooo_nl.eml", "ooo_fr.eml", "ooo_de.eml", "reply_nl.eml"):
        cases.append((f"tests/data/{name}", clean(fixture(name)), False, set(), None))

    # Each candidate: stdlib Message (compat32, as parse_message builds it) -> (temporary, permanent) sets
    def ours(msg: email.message.Message) -> tuple[set[str], set[str]]:
        bounce = automatic.parse_dsn(msg)
        if bounce is None:
            return set(), set()
        rcpt = {bounce.recipient} if bounce.recipient else {""}
        return (set(), rcpt) if bounce.permanent else (rcpt, set())

    cands: dict[str, Any] = {"mailbot automatic.parse_dsn (= Mail.bounce)": ours}
    fb = mods.get("flufl.bounce")
    if fb is None:
        cands["flufl.bounce all_failures"] = cands["flufl.bounce scan_message"] = "not importable"
    else:
        def dec(values: Any) -> set[str]:
            return {(v.decode("latin-1") if isinstance(v, bytes) else str(v)).lower() for v in values}

        def flufl_all(msg: email.message.Message) -> tuple[set[str], set[str]]:
            temporary, permanent = fb.all_failures(msg)
            return dec(temporary), dec(permanent)

        def flufl_scan(msg: email.message.Message) -> tuple[set[str], set[str]]:
            return set(), dec(fb.scan_message(msg))

        cands["flufl.bounce all_failures"] = flufl_all
        cands["flufl.bounce scan_message"] = flufl_scan

    results: dict[str, Any] = {}
    for name, fn in cands.items():
        if isinstance(fn, str):
            results[name] = {"available": False, "reason": fn}
            continue
        times: list[float] = []
        errors: list[str] = []
        slowest: list[tuple[float, str]] = []
        bounce_rows = found = with_ref = ref_match = false_pos = 0
        missed: list[str] = []
        wrong: list[str] = []
        fps: list[str] = []
        fixtures_ok: list[str] = []
        fixtures_bad: list[str] = []
        for label, raw, expect, ref, fx in cases:
            msg = email.message_from_bytes(raw, policy=compat32)
            out, secs, err = timed(fn, msg, rounds)
            times.append(secs)
            slowest.append((secs, label))
            if err:
                errors.append(f"{label}: {err}")
            temporary, permanent = out or (set(), set())
            got = {a for a in temporary | permanent if a}
            detected = bool(temporary or permanent)
            if expect:
                bounce_rows += 1
                found += bool(got)
                if not got:
                    missed.append(label)
                if ref:
                    with_ref += 1
                    if got & ref:
                        ref_match += 1
                    elif got:
                        wrong.append(f"{label}: got {sorted(got)[:2]}, DSN says {sorted(ref)[:2]}")
            elif detected:
                false_pos += 1
                fps.append(f"{label}: {sorted(got)[:2]}")
            if fx:
                rcpt, permanent_expected = fx
                ok = rcpt in (permanent if permanent_expected else temporary)
                (fixtures_ok if ok else fixtures_bad).append(label)
        results[name] = {
            "available": True,
            "bounce_cases": bounce_rows,
            "recipient_found": found,
            "bounce_missed": missed,
            "cases_with_dsn_reference": with_ref,
            "recipient_matches_dsn_reference": ref_match,
            "recipient_wrong": wrong,
            "non_bounce_cases": len(cases) - bounce_rows,
            "false_positives": false_pos,
            "false_positive_files": fps,
            "fixtures_recipient_and_permanence_ok": len(fixtures_ok),
            "fixtures_failed": fixtures_bad,
            "errors": errors,
            "us_per_message": us(mean(times)),
            "us_median": us(median(times)),
            "us_max": us(max(times, default=0.0)),
            "slowest_inputs_us": {label: us(secs) for secs, label in sorted(slowest, reverse=True)[:3]},
        }

    # Automatic-mail detection (auto-replies, reports, lists, bounces): only ours does this.
    auto_rows = [r for r in corpus if r["is_auto_reply_or_bounce"] in ("yes", "no")]
    agree, wrong_auto = 0, []
    for row in auto_rows:
        is_auto = classify(parse_message(row["raw"])).is_automatic
        if is_auto == (row["is_auto_reply_or_bounce"] == "yes"):
            agree += 1
        else:
            wrong_auto.append(f"{'FP' if is_auto else 'FN'} {row['file']}")
    results["automatic detection (ours only: classify().is_automatic)"] = {
        "available": True, "labelled": len(auto_rows), "agree_with_label": agree, "disagree": wrong_auto,
        "note": "flufl.bounce reads bounces only; it has no auto-reply/list/report detection",
    }
    return results


# --------------------------------------------------------------------------- 4. HTML → text

_SCRIPT_STYLE = re.compile(r"<(script|style)\b[^>]*>(.*?)</\1\s*>", re.IGNORECASE | re.DOTALL)


def leak_markers(markup: str) -> list[str]:
    """Distinctive words inside <script>/<style> elements of `markup`."""
    words: list[str] = []
    for _, body in _SCRIPT_STYLE.findall(markup):
        words += [w for w in re.findall(r"[A-Za-z_][\w-]{4,}", body) if w.lower() not in ("color", "text", "javascript")][:3]
    return words


def bench_html(mods: dict[str, Any], corpus: list[dict[str, Any]], rounds: int) -> dict[str, Any]:
    inputs: list[tuple[str, str, list[str]]] = []  # (label, html, visible words that must survive)
    for row in corpus:
        if row["category"] == "html_only" or row["file"].startswith("html_only/"):
            inputs.append((row["file"], parse_message(row["raw"]).html, []))
    inputs.append(("tests/data/html_only_outlook_nl.eml", parse_message(fixture("html_only_outlook_nl.eml")).html,
                   ["Beste"]))
    inputs.append(("synthetic script/style probe", HTML_PROBE, PROBE_VISIBLE))

    cands: dict[str, Any] = {"mailbot htmltext.html_to_text (inscriptis + pre-strip)": html_to_text}
    if "inscriptis" in mods:
        cands["inscriptis.get_text (bare, defaults)"] = mods["inscriptis"].get_text
    else:
        cands["inscriptis.get_text (bare, defaults)"] = "not importable"
    if "html2text" in mods:
        def h2t(markup: str) -> str:
            conv = mods["html2text"].HTML2Text()
            conv.body_width = 0  # no re-wrapping
            conv.ignore_images = True
            return conv.handle(markup)

        cands["html2text (body_width=0, ignore_images)"] = h2t
    else:
        cands["html2text (body_width=0, ignore_images)"] = "not importable"

    results: dict[str, Any] = {}
    for name, fn in cands.items():
        if isinstance(fn, str):
            results[name] = {"available": False, "reason": fn}
            continue
        per_file = {}
        times: list[float] = []
        leaks_total = lost_total = 0
        errors: list[str] = []
        for label, markup, visible in inputs:
            out, secs, err = timed(fn, markup, rounds)
            times.append(secs)
            if err:
                errors.append(f"{label}: {err}")
            out = out or ""
            leaks = [w for w in leak_markers(markup) if w in out]
            lost = [w for w in visible if w not in out]
            leaks_total += len(leaks)
            lost_total += len(lost)
            per_file[label] = {"html_chars": len(markup), "text_chars": len(out), "us": us(secs),
                               "script_style_leaks": leaks, "visible_text_lost": lost,
                               "markdown_syntax": bool(re.search(r"\*\*|^#+ |\|\s*---", out, re.MULTILINE))}
        results[name] = {"available": True, "inputs": per_file, "script_style_leaks": leaks_total,
                         "visible_text_lost": lost_total, "errors": errors, "us_per_message": us(mean(times)),
                         "us_median": us(median(times)), "us_max": us(max(times, default=0.0))}
    return results


# --------------------------------------------------------------------------- winners + table

SPEED_TIE = 1.25  # timings within 25 % of each other are noise on a shared machine


def pick(results: dict[str, Any], score: Callable[[dict[str, Any]], tuple]) -> str:
    """The best candidate by `score` (quality first, last element -µs); equal quality within
    SPEED_TIE of the best time is reported as a tie."""
    usable = {k: v for k, v in results.items() if v.get("available") and "us_per_message" in v}
    if not usable:
        return ""
    ranked = sorted(usable, key=lambda k: score(usable[k]), reverse=True)
    best = ranked[0]
    tied = [k for k in ranked[1:] if score(usable[k])[:-1] == score(usable[best])[:-1]
            and usable[k]["us_per_message"] <= usable[best]["us_per_message"] * SPEED_TIE]
    return " = ".join([best, *tied]) + (" (tie within timing noise)" if tied else "")


def winners(report: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {
        "forwards": {
            "winner": pick(report["forwards"], lambda r: (
                r["corpus_accuracy"] + (r["fixtures_sender_ok"] + r["fixtures_subject_ok"]) / (2 * r["fixtures"])
                - len(r["negative_fixtures_false_positives"]) / r["negative_fixtures"] + r["nested_all_senders_in_order"],
                -r["us_per_message"])),
            "by": "corpus label accuracy + fixture sender/subject rate + nested forward − negative-fixture FP rate; then speed",
        },
        "quotes": {
            "winner": pick(report["quotes"], lambda r: (
                r["fixtures_pass"] / r["fixtures"] + r["talon_signature_insensitive"] / max(r["talon_cases"], 1)
                + r["signature_dropped"] / r["signature_fixtures"],
                r["talon_mean_ratio_signature_insensitive"] or 0, -r["us_per_message"])),
            "by": ("our nl/fr/de/en fixtures passed + talon cases matched (signature-insensitive) + our signature "
                   "fixtures; then signature-insensitive ratio, speed"),
        },
        "bounces": {
            "winner": pick(report["bounces"], lambda r: (
                r["recipient_matches_dsn_reference"] + r["recipient_found"] + 2 * r["fixtures_recipient_and_permanence_ok"]
                - 2 * r["false_positives"], -r["us_per_message"])),
            "by": "recipients found / matching the DSN + fixtures (recipient and permanence) − false positives; then speed",
        },
        "html": {
            "winner": pick(report["html"], lambda r: (-r["script_style_leaks"] - r["visible_text_lost"], -r["us_per_message"])),
            "by": "no script/style leak and no visible text lost; then speed",
        },
    }


def table(title: str, results: dict[str, Any], cols: list[tuple[str, Callable[[dict[str, Any]], Any]]]) -> str:
    head = ["candidate"] + [c for c, _ in cols]
    rows: list[list[str]] = []
    notes: list[str] = []
    for name, r in results.items():
        if not r.get("available"):
            rows.append([name, "n/a"] + [""] * (len(cols) - 1))
            notes.append(f"   {name}: n/a — {r.get('reason', '')}")
            continue
        if "us_per_message" not in r:
            continue
        rows.append([name] + [str(f(r)) for _, f in cols])
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    lines = [f"\n== {title}", "  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines + notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--rounds", type=int, default=10, help="timed calls per input (after one untimed)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    started = time.perf_counter()
    for noisy in ("flufl.bounce", "emailforwardparser"):  # both log a traceback per failure they survive
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    mods, libs = load_libraries()
    corpus = load_corpus(args.corpus)
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "libraries": libs,
        "corpus_messages": len(corpus),
        "rounds": args.rounds,
        "forwards": bench_forwards(mods, corpus, args.rounds),
        "quotes": bench_quotes(mods, corpus, args.corpus, args.rounds),
        "bounces": bench_bounces(mods, corpus, args.rounds),
        "html": bench_html(mods, corpus, args.rounds),
    }
    report["winners"] = winners(report)
    report["runtime_seconds"] = round(time.perf_counter() - started, 1)

    print("libraries: " + ", ".join(f"{k} {v.get('version', v.get('error'))}" for k, v in libs.items()))
    print(table("1. Forwarded content (corpus labels yes/no; our 14 client fixtures; 9 negative fixtures)",
                report["forwards"], [
                    ("acc", lambda r: r["corpus_accuracy"]),
                    ("TP/FP/FN/TN", lambda r: f"{r['corpus_tp']}/{r['corpus_fp']}/{r['corpus_fn']}/{r['corpus_tn']}"),
                    ("fx detect", lambda r: f"{r['fixtures_detected']}/{r['fixtures']}"),
                    ("fx sender", lambda r: f"{r['fixtures_sender_ok']}/{r['fixtures']}"),
                    ("fx subject", lambda r: f"{r['fixtures_subject_ok']}/{r['fixtures']}"),
                    ("nested", lambda r: "yes" if r["nested_all_senders_in_order"] else "no"),
                    ("neg FP", lambda r: f"{len(r['negative_fixtures_false_positives'])}/{r['negative_fixtures']}"),
                    ("errors", lambda r: len(r["errors"])),
                    ("µs/msg", lambda r: r["us_per_message"]),
                ]))
    print("   µs/msg: mean over inputs of each input's median call. parse_message's time is the whole parse (MIME,\n"
          "   charsets, quotes, DSN, forwards); the '(decoded text)' rows get Mail.text and time only their own call;\n"
          "   email-forward-parser's client parses the MIME itself.")
    print(table("2. New text vs quoted history (talon expected replies; our nl/fr/de/en fixtures)",
                report["quotes"], [
                    ("talon exact", lambda r: f"{r['talon_exact']}/{r['talon_cases']}"),
                    ("talon norm-ws", lambda r: f"{r['talon_normalised_ws']}/{r['talon_cases']}"),
                    ("talon sig-insens.", lambda r: f"{r['talon_signature_insensitive']}/{r['talon_cases']}"),
                    ("ratio", lambda r: r["talon_mean_ratio"]),
                    ("ratio sig-insens.", lambda r: r["talon_mean_ratio_signature_insensitive"]),
                    ("fixtures", lambda r: f"{r['fixtures_pass']}/{r['fixtures']}"),
                    ("signature cut", lambda r: f"{r['signature_dropped']}/{r['signature_fixtures']}"),
                    ("errors", lambda r: len(r["errors"])),
                    ("µs/msg", lambda r: r["us_per_message"]),
                ]))
    print(table("3. Bounces (corpus bounce rows + 2 fixtures; every other corpus row is a negative)",
                report["bounces"], [
                    ("rcpt found", lambda r: f"{r['recipient_found']}/{r['bounce_cases']}"),
                    ("= DSN ref", lambda r: f"{r['recipient_matches_dsn_reference']}/{r['cases_with_dsn_reference']}"),
                    ("fixtures", lambda r: f"{r['fixtures_recipient_and_permanence_ok']}/{len(BOUNCE_FIXTURES)}"),
                    ("false pos", lambda r: f"{r['false_positives']}/{r['non_bounce_cases']}"),
                    ("errors", lambda r: len(r["errors"])),
                    ("µs/msg", lambda r: r["us_per_message"]),
                ]))
    auto = report["bounces"]["automatic detection (ours only: classify().is_automatic)"]
    print(f"   automatic-mail detection (ours only): {auto['agree_with_label']}/{auto['labelled']} agree with labels.tsv")
    print(table("4. HTML to text (corpus html_only + our HTML fixture + a script/style probe)",
                report["html"], [
                    ("leaks", lambda r: r["script_style_leaks"]),
                    ("visible lost", lambda r: r["visible_text_lost"]),
                    ("chars out", lambda r: "/".join(str(v["text_chars"]) for v in r["inputs"].values())),
                    ("markdown", lambda r: sum(v["markdown_syntax"] for v in r["inputs"].values())),
                    ("errors", lambda r: len(r["errors"])),
                    ("µs/msg", lambda r: r["us_per_message"]),
                ]))
    print("\nwinners:")
    for task, w in report["winners"].items():
        print(f"  {task:9} {w['winner']}   ({w['by']})")
    print(f"\nruntime {report['runtime_seconds']} s")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=sorted) + "\n", encoding="utf-8")
    try:
        shown = args.out.resolve().relative_to(ROOT)
    except ValueError:
        shown = args.out.name
    print(f"wrote {shown}")


if __name__ == "__main__":
    main()
