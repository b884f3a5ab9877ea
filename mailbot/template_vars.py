"""The variables each reply template is rendered with.

At run time every reply template gets every variable of `RUNTIME` (`replies.reply_context`
gives them all, blank where they do not apply), `referred_by` only for a complaint another
ombudsman service forwarded to us (`OPTIONAL`). `SAMPLES` gives meaningful values per template.
`rules check` refuses a template naming any other variable (`allowed_names`), and renders each
template with `sample_context(name)` and its `variants` (the branches real mail takes).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

from jinja2 import meta, nodes

# Example values for `rules check` and the tests; real replies take them from config.yaml.
_OFFICE = {"name": "Vlaamse Ombudsdienst", "address": "Leuvenseweg 86, 1000 Brussel",
           "phone": "0800 240 50", "website": "https://www.vlaamseombudsdienst.be",
           "email": "klachten@vlaamseombudsdienst.be"}
_INVESTIGATOR = {"name": "An Peeters", "email": "an.peeters@vlaamseombudsdienst.be",
                 "phone": "+32 2 552 48 00"}

# Every context variable, per template. Common to all: office, case_ref, citizen_name
# ('' when unknown: the greeting becomes neutral), original_subject. `lang` is set by
# the renderer. Empty strings are fine; missing keys are errors (StrictUndefined).
COMMON: dict[str, Any] = {"office": _OFFICE, "case_ref": "VO-2026-000123",
                          "citizen_name": "Jan Janssens",
                          "original_subject": "Terugbetaling studietoelage"}
SAMPLES: dict[str, dict[str, Any]] = {
    # investigator: email "" while nobody could be assigned (the reply says one will follow).
    "ack_investigation": {"investigator": _INVESTIGATOR},
    # we_forwarded: True when we forwarded the complaint ourselves, False when the citizen should.
    "referred_ombudsman": {"we_forwarded": True, "service": {"name": "Federale Ombudsman", "email": "contact@federaalombudsman.be",
                                       "phone": "0800 99 961", "website": "https://www.federaalombudsman.be",
                                       "address": "Leuvenseweg 48 bus 6, 1000 Brussel"}},
    "referred_agency": {"we_forwarded": False, "agency": {"name": "Departement Onderwijs en Vorming", "email": "info@onderwijs.vlaanderen.be",
                                   "phone": "1700", "website": "https://www.onderwijs.vlaanderen.be",
                                   "address": ""}},
    # answer_text: the rule's `answer_text` in the reply's language ('' = no answer: the template
    # must then not announce one). Real replies: routing_stage.template_context.
    "direct_answer": {"answer_text": "U kunt de aanvraag online indienen.\n\nDe termijn is dertig dagen."},
    # questions: the rule's `questions` in the reply's language ([] = the template's general ones).
    "ask_info": {"questions": ["een kopie van de beslissing", "de datum van uw aanvraag"]},
    "multi_addressed": {"services": ["Federale Ombudsman", "Kinderrechtencommissariaat"]},
    "agency_in_cc": {"agency": {"name": "Departement Onderwijs en Vorming", "email": "info@onderwijs.vlaanderen.be",
                                "phone": "", "website": "", "address": ""}},
    # forwarded.sender: the agency's display name, or its address when it has none.
    # forwarded.date: dd-mm-yyyy, '' when the forwarded message gives none.
    "forward_added": {"forwarded": {"sender": "Departement Onderwijs en Vorming",
                                    "subject": "Uw dossier 2026/123", "date": "12-11-2026"}},
    # status: open | investigating | waiting_agency | waiting_citizen | closed (other values get a
    # neutral label, never the code); outcome: the case's first reaction (investigation |
    # refer_ombudsman | refer_agency | answer | ask_info): an open case handled by quick service
    # is told what was done. investigator may be None while nobody is assigned.
    "status": {"status": "investigating", "outcome": "investigation", "investigator": _INVESTIGATOR},
    "status_neutral": {},
    # Names no case: the mail may concern a case the sender's address is not on file for.
    "receipt_neutral": {},
    # Mail from the address on file of a closed case: staff decide whether to reopen it.
    "closed_case_received": {},
    # cases: the sender's open cases (none closed), each with its status as the status reply has it.
    "status_overview": {"cases": [
        {"ref": "VO-2026-000123", "subject": "Terugbetaling studietoelage", "status": "investigating",
         "outcome": "investigation", "investigator": _INVESTIGATOR},
        {"ref": "VO-2026-000245", "subject": "Bus 58 stopt niet meer", "status": "open",
         "outcome": "refer_agency", "investigator": {"name": "", "email": "", "phone": ""}},
    ]},
    # reason: too_large | unreadable; the limit in MB (int, 0 under 1 MB) and in kB (int).
    "undeliverable": {"reason": "too_large", "max_size_mb": 25, "max_size_kb": 25600},
}


_BLANK_PARTY = {"name": "", "email": "", "phone": "", "website": "", "address": ""}
_REFERRER = {"name": "Federale Ombudsman", "email": "contact@federaalombudsman.be", "phone": "0800 99 961",
             "website": "https://www.federaalombudsman.be", "address": "Leuvenseweg 48 bus 6, 1000 Brussel"}

# What every template gets at run time besides COMMON (`replies.reply_context`), as an example:
# a template of your own (one not in SAMPLES) is checked with all of it.
RUNTIME: dict[str, Any] = {
    "investigator": _INVESTIGATOR, "status": "investigating", "outcome": "investigation",
    "services": ["Federale Ombudsman"], "service": SAMPLES["referred_ombudsman"]["service"],
    "agency": SAMPLES["referred_agency"]["agency"], "we_forwarded": True,
    "answer_text": SAMPLES["direct_answer"]["answer_text"], "questions": SAMPLES["ask_info"]["questions"],
    "forwarded": SAMPLES["forward_added"]["forwarded"], "cases": SAMPLES["status_overview"]["cases"],
    "reason": "too_large", "max_size_mb": 25, "max_size_kb": 25600,
}
# Given only to some replies: a template must test it (`{% if referred_by is defined %}`).
# referred_by: the ombudsman service that forwarded the citizen's complaint to us.
OPTIONAL: dict[str, Any] = {"referred_by": _REFERRER}

# How real mail differs from the samples, one way at a time: `rules check` renders each
# template with every variant too, so a mistake in a branch the sample never takes is found.
_STATUSES = ("open", "investigating", "waiting_agency", "waiting_citizen", "closed", "on_hold")
_OUTCOMES = ("investigation", "refer_ombudsman", "refer_agency", "answer", "ask_info")
VARIANTS: tuple[dict[str, Any], ...] = (
    # nobody assigned, a closed case, nothing known: every value blank or empty
    {"investigator": {"name": "", "email": "", "phone": ""}, "status": "closed", "citizen_name": "",
     "case_ref": "", "services": [], "service": _BLANK_PARTY, "agency": _BLANK_PARTY, "we_forwarded": False,
     "answer_text": "", "questions": [], "forwarded": {"sender": "", "subject": "", "date": ""}, "cases": [],
     "reason": "unreadable", "max_size_mb": 0, "max_size_kb": 512,
     "office": {"name": "Vlaamse Ombudsdienst", "address": "", "phone": "", "website": "", "email": ""}},
    {"referred_by": _REFERRER},  # a complaint another ombudsman service forwarded to us
    {"we_forwarded": True}, {"we_forwarded": False},
    *({"status": status} for status in _STATUSES),
    *({"status": "open", "outcome": outcome} for outcome in _OUTCOMES),
)


def sample_context(name: str) -> dict[str, Any]:
    """A complete example context for a template: every variable run time gives it (a name
    not in SAMPLES, a template of your own, gets them all with example values)."""
    return copy.deepcopy({**COMMON, **RUNTIME, **SAMPLES.get(name, {})})


def variants(context: Mapping[str, Any], used: set[str] | frozenset[str]) -> list[dict[str, Any]]:
    """`context` as real mail varies it (`VARIANTS`), each a complete context; only those that
    change a variable in `used` (the ones the template names: the others render the same)."""
    missing = object()
    return [copy.deepcopy({**context, **variant}) for variant in VARIANTS
            if any(key in used and context.get(key, missing) != value for key, value in variant.items())]


def allowed_names(context: dict[str, Any]) -> frozenset[str]:
    """The variables a template rendered with `context` may name: those, `OPTIONAL` ones and
    `lang` (set by the renderer)."""
    return frozenset(context) | frozenset(OPTIONAL) | {"lang"}



def undeclared_names(ast: nodes.Template) -> dict[str, int]:
    """Every variable a parsed template reads from its context, with the line it is first read
    on: whichever branch it is in (a sample render only sees the branches it takes)."""
    names = meta.find_undeclared_variables(ast)
    lines: dict[str, int] = {}
    for node in ast.find_all(nodes.Name):
        if node.name in names and node.ctx == "load":
            lines[node.name] = min(lines.get(node.name, node.lineno), node.lineno)
    return {name: lines.get(name, 1) for name in names}


def unknown_attributes(ast: nodes.Template, context: Mapping[str, Any]) -> Iterator[tuple[int, str, str, list[str]]]:
    """(line, variable, attribute, its known attributes) for `investigator.emial` and the like:
    an attribute of a context dict it has no key for. Names the template sets itself, method
    calls and `is defined` tests are left alone."""
    shapes = {name: sorted(value) for name, value in {**OPTIONAL, **context}.items() if isinstance(value, dict)}
    local = {node.name for node in ast.find_all(nodes.Name) if node.ctx in ("store", "param")}
    guarded = {id(test.node) for test in ast.find_all(nodes.Test) if test.name in ("defined", "undefined")}
    called = {id(call.node) for call in ast.find_all(nodes.Call)}
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        assert isinstance(node, (nodes.Getattr, nodes.Getitem))
        target = node.node
        if not isinstance(target, nodes.Name) or target.name in local or target.name not in shapes:
            continue
        if id(node) in guarded or id(node) in called:
            continue
        attr = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
        if isinstance(attr, str) and attr not in shapes[target.name] and not attr.startswith("_"):  # _: the sandbox's
            yield node.lineno, target.name, attr, shapes[target.name]
