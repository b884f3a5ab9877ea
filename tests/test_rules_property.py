"""Property: `rules check` reports problems for any input and never crashes."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbot.rules_check import check_contents

KEYS = ["rules", "services", "teams", "investigators", "name", "when", "then", "any", "all", "not", "kind",
        "language", "service", "id", "in", "keywords", "fuzzy", "assign", "team", "email", "continue",
        "refer_ombudsman", "refer_agency", "answer", "ask_info", "body_regex", "subject_regex", "capacity",
        "absent_from", "absent_to", "domains", "addresses", "competent", "refer_to", "reference_pattern", "x",
        "answer_text", "questions", "template", "nl", "fr", "en", "de"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=12),
                    st.sampled_from(KEYS), st.dates(), st.sampled_from(["(a+)+$", "[", "new_complaint", "agency"]))
trees = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.sampled_from(KEYS), children, max_size=5)), max_leaves=25)


def _check(texts: dict[str, bytes | None]) -> None:
    result = check_contents(texts, label="rules")
    assert all(isinstance(p, str) and p.startswith("rules/") for p in result.problems)
    assert (result.ruleset is None) == bool(result.problems)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["services.yaml", "routing.yaml", "investigators.yaml"]), trees)
def test_check_never_crashes_on_arbitrary_yaml_structures(name: str, tree: object) -> None:
    """Any YAML document in any of the three files gives problems or a rule set, never an exception."""
    texts: dict[str, bytes | None] = {"services.yaml": b"", "routing.yaml": b"", "investigators.yaml": b""}
    texts[name] = yaml.safe_dump(tree, allow_unicode=True).encode()
    _check(texts)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200), st.text(max_size=200))
def test_check_never_crashes_on_arbitrary_bytes_and_text(raw: bytes, text: str) -> None:
    """Arbitrary bytes and text (broken YAML, tabs, odd characters) are reported, never raised."""
    _check({"services.yaml": raw, "routing.yaml": text.encode("utf-8", "surrogatepass"),
            "investigators.yaml": b"teams: [\n" if raw else None})


def test_deep_nesting_is_a_problem_not_a_crash() -> None:
    """Pathologically deep nesting is reported as a problem."""
    deep = "rules: " + "[" * 5000 + "]" * 5000 + "\n"
    _check({"services.yaml": b"", "routing.yaml": deep.encode(), "investigators.yaml": b""})
    deep_conditions = "rules:\n  - name: r\n    then: {tags: [x]}\n    when: " + "{not: " * 400 + "{}" + "}" * 400
    _check({"services.yaml": b"", "routing.yaml": deep_conditions.encode(), "investigators.yaml": b""})
