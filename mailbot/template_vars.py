"""The variables each reply template is rendered with.

`SAMPLES` documents every variable of every template by example: `rules check` renders each
template with `sample_context(name)`, and so do the tests.
"""

from __future__ import annotations

import copy
from typing import Any



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
    "forward_added": {"forwarded": {"sender": "Departement Onderwijs en Vorming",
                                    "subject": "Uw dossier 2026/123"}},
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


def sample_context(name: str) -> dict[str, Any]:
    """A complete example context for a template (unknown names get the common variables)."""
    return copy.deepcopy({**COMMON, **SAMPLES.get(name, {})})
