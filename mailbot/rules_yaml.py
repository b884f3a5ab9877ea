"""One rule file's YAML, parsed and validated, with every problem placed at its `file:line`.

YAML is composed into nodes first so every key and list item keeps its line number; schema
errors (pydantic) are mapped back to those lines and name the rule, service, team or
investigator they are in. Nothing here raises on bad input: problems are collected on the
`CheckedFile`; `rules_check` then checks the references between the files.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .conditions import Condition, KeywordCondition, ServiceCondition
from .rules import FILE_MODELS, Actions, AnswerText, Assign, InvestigatorEntry, Questions, Rule, Team
from .services import PerLanguage, Service

KeyPath = tuple[str | int, ...]
_MAX_NODES = 100_000  # refuses "billion laughs" alias bombs

# What a key may be, by the key it sits under: for "unknown ..." messages and suggestions.
_CONTEXTS: dict[str, tuple[str, type[BaseModel]]] = {
    "then": ("action", Actions), "when": ("condition", Condition), "any": ("condition", Condition),
    "all": ("condition", Condition), "not": ("condition", Condition), "assign": ("key", Assign),
    "keywords": ("key", KeywordCondition), "service": ("key", ServiceCondition), "rules": ("key", Rule),
    "services": ("key", Service), "teams": ("key", Team), "investigators": ("key", InvestigatorEntry),
    "names": ("language", PerLanguage), "websites": ("language", PerLanguage),
    "answer_text": ("language", AnswerText), "questions": ("language", Questions),
}
_ENTITIES = {"rules": ("rule", "name"), "services": ("service", "id"), "teams": ("team", "id"),
             "investigators": ("investigator", "email")}


class _YamlProblem(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line, self.message = line, message


@dataclass
class CheckedFile:
    """One rule file being checked: its data, the line of every key path, and its problems."""

    name: str
    shown: str
    data: Any = None
    lines: dict[KeyPath, int] = field(default_factory=dict)
    raw: dict[KeyPath, str] = field(default_factory=dict)  # scalars as written, for messages
    duplicates: list[tuple[KeyPath, int, str]] = field(default_factory=list)  # reported once data is known
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def line(self, path: KeyPath) -> int:
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return 1

    def report(self, path: KeyPath, message: str) -> None:
        self.problems.append(f"{self.shown}:{self.line(path)}: {self.who(path)}{message}")

    def warn(self, path: KeyPath, message: str) -> None:
        self.warnings.append(f"{self.shown}:{self.line(path)}: {self.who(path)}{message}")

    def who(self, path: KeyPath) -> str:
        if len(path) < 2 or path[0] not in _ENTITIES or not isinstance(path[1], int):
            return ""
        kind, key = _ENTITIES[str(path[0])]
        try:
            value = self.raw.get((path[0], path[1], key)) or self.data[path[0]][path[1]][key]
        except (KeyError, IndexError, TypeError):
            value = None
        return f"{kind} '{value}': " if isinstance(value, str | int) else f"{kind} #{path[1] + 1}: "


def parse_and_validate(file: CheckedFile, raw: bytes | None) -> BaseModel | None:
    """The file's schema model; None when it has problems, which are recorded on `file`."""
    if raw is None:
        file.problems.append(f"{file.shown}:1: the file is missing or unreadable")
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        file.problems.append(f"{file.shown}:{line}: not UTF-8 text")
        return None
    try:
        file.data = _compose(text, file)
    except _YamlProblem as err:
        file.problems.append(f"{file.shown}:{err.line}: {err.message}")
        return None
    keys = list(FILE_MODELS[file.name].model_fields)
    if file.data is None:  # nothing but comments: a deploy cut short, or emptied by mistake
        file.data = {}
        file.report((), f"the file is empty: it needs {_written(keys)} (an empty list is written "
                        f"'{keys[0]}: []')")
        return None
    for path, line, key in file.duplicates:
        file.problems.append(f"{file.shown}:{line}: {file.who(path)}duplicate key '{key}'")
    if not isinstance(file.data, dict):
        file.report((), f"the file must be a mapping with {', '.join(repr(k + ':') for k in keys)}")
        return None
    missing = [key for key in keys if key not in file.data]
    if missing and set(file.data) <= set(keys):  # (a misspelt key is told as such below)
        file.report((), f"missing top-level key {_written(missing)} (for none, write '{missing[0]}: []')")
        return None
    try:
        return FILE_MODELS[file.name].model_validate(file.data)
    except ValidationError as err:
        for error in err.errors():
            _report_schema_error(file, error)
        return None
    except RecursionError:
        file.report((), "nesting too deep")
        return None


def _written(keys: list[str]) -> str:
    return " and ".join(f"'{key}:'" for key in keys)


def _compose(text: str, file: CheckedFile) -> Any:
    """YAML text to plain data, recording the line of every key path and list item."""
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)  # the reader already rejects control characters here
        node = loader.get_single_node()
        return None if node is None else _walk(node, (), file, loader, set(), [0])
    except yaml.YAMLError as err:
        raise _YamlProblem(_error_line(err, text), f"YAML syntax error: {_yaml_message(err)}") from None
    except RecursionError:
        raise _YamlProblem(1, "YAML nesting too deep") from None
    finally:
        if loader is not None:
            loader.dispose()


def _walk(node: yaml.Node, path: KeyPath, file: CheckedFile, loader: yaml.SafeLoader, active: set[int],
          count: list[int]) -> Any:
    file.lines.setdefault(path, node.start_mark.line + 1)
    count[0] += 1
    if count[0] > _MAX_NODES:
        raise _YamlProblem(node.start_mark.line + 1, "document too large (too many aliases or values)")
    if id(node) in active:
        raise _YamlProblem(node.start_mark.line + 1, "an alias refers to itself")
    if isinstance(node, yaml.ScalarNode):
        file.raw[path] = str(node.value)
        return loader.construct_object(node)
    active = active | {id(node)}
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, (*path, i), file, loader, active, count) for i, item in enumerate(node.value)]
    if isinstance(node, yaml.MappingNode):
        written: set[str] = set()
        for key_node, _ in node.value:  # duplicates among the keys as written, before merging
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise _YamlProblem(line, "a key must be plain text")
            if key_node.value in written and key_node.tag != "tag:yaml.org,2002:merge":
                file.duplicates.append((path, line, str(key_node.value)))
            written.add(key_node.value)
        loader.flatten_mapping(node)  # resolves `<<: *defaults`; keys written here override merged ones
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise _YamlProblem(key_node.start_mark.line + 1, "a key must be plain text")
            key = str(key_node.value)  # the text as written: `on`, `no` stay words, not booleans
            file.lines[(*path, key)] = key_node.start_mark.line + 1
            result[key] = _walk(value_node, (*path, key), file, loader, active, count)
        return result
    raise _YamlProblem(node.start_mark.line + 1, "unsupported YAML node")


def _error_line(err: yaml.YAMLError, text: str) -> int:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    if mark is not None:
        return int(mark.line) + 1
    position = getattr(err, "position", None)  # ReaderError: a character offset
    return text[:position].count("\n") + 1 if isinstance(position, int) else 1


def _yaml_message(err: yaml.YAMLError) -> str:
    problem = getattr(err, "problem", None)
    context = getattr(err, "context", None)
    if problem:
        return f"{problem} ({context})" if context else str(problem)
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def _report_schema_error(file: CheckedFile, error: Any) -> None:
    loc: KeyPath = tuple(part for part in error["loc"] if isinstance(part, int) or not _is_tag(str(part)))
    kind, message = error["type"], str(error["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden" and loc:
        key, parent = str(loc[-1]), [p for p in loc[:-1] if isinstance(p, str)]
        what, model = _CONTEXTS.get(parent[-1], ("key", FILE_MODELS[file.name])) if parent else (
            "key", FILE_MODELS[file.name])
        names = [f.alias or n for n, f in model.model_fields.items()]
        file.report(loc, f"unknown {what} '{key}'{_misplaced(key, parent[-1] if parent else '') or suggest(key, names)}")
        return
    field_path = ".".join(str(p) for p in (loc[2:] if file.who(loc) else loc))
    if kind == "missing":
        parent_path = ".".join(str(p) for p in (loc[2:-1] if file.who(loc) else loc[:-1]))
        why = (" (every reply language is needed: nl, fr, en and de)"
               if len(loc) > 1 and loc[-2] in ("answer_text", "questions") else "")
        file.report(loc[:-1], f"missing '{loc[-1]}'" + (f" in {parent_path}" if parent_path else "") + why)
        return
    hint = ""
    written = file.raw.get(loc)
    plain = _plain_advice(kind, error.get("input"), written, str(loc[-1]) if loc else "")
    if plain is not None:  # pydantic's wording speaks of tuples and instances, not of YAML
        file.report(loc, f"{field_path}: {plain}" if field_path else plain)
        return
    if kind == "string_type" and written is not None and not isinstance(error.get("input"), str):
        hint = f" (YAML reads {written} as {type(error['input']).__name__}; write it in quotes: '{written}')"
    if kind in ("literal_error", "enum") and isinstance(error.get("input"), str):
        hint = suggest(error["input"], re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", ""))))
    file.report(loc, f"{field_path}: {message}{hint}" if field_path else f"{message}{hint}")


_DATE_ERRORS = ("date_type", "date_parsing", "date_from_datetime_parsing", "date_from_datetime_inexact")
_CONDITION_KEYS = ("when", "any", "all", "not")


def _plain_advice(kind: str, value: Any, written: str | None, key: str) -> str | None:
    """What to write instead, for the schema errors whose library wording helps nobody."""
    shown = written if written is not None else str(value)
    if kind in ("tuple_type", "list_type"):
        example = f"[{shown}]" if not isinstance(value, dict | list) else "[a, b]"
        return f"write a list, e.g. {example}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        if isinstance(value, list) and key in _CONDITION_KEYS:
            return ("write the conditions as keys (kind: …, keywords: …), not as a list of '- ' items; "
                    "to combine conditions, use any: [...] or all: [...]")
        if isinstance(value, list):
            return "write keys (name: value) here, not a list of '- ' items"
        return f"write keys (name: value) here, not the single value '{shown}'"
    if kind in _DATE_ERRORS:
        return f"'{shown}' is not a date: write a date as YYYY-MM-DD, e.g. 2026-07-01"
    if kind in ("bool_type", "bool_parsing"):
        return f"'{shown}' is not true or false"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"'{shown}' is not a whole number"
    return None


def _misplaced(key: str, parent: str) -> str:
    """A hint for a key written at the wrong level: `continue` under `then`, an action under `when`…"""
    rule_keys = [f.alias or n for n, f in Rule.model_fields.items()]
    actions = list(Actions.model_fields)
    conditions = [f.alias or n for n, f in Condition.model_fields.items()]
    if parent == "then" and key in rule_keys:
        return f" (`{key}` belongs to the rule, one level up, next to `then:`)"
    if parent == "then" and key in conditions:
        return f" (`{key}` is a condition: put it under `when:`)"
    if parent in _CONDITION_KEYS and key in actions:
        return f" (`{key}` is an action: put it under `then:`)"
    if parent == "rules" and key in actions:
        return f" (`{key}` is an action: put it under the rule's `then:`)"
    if parent == "rules" and key in conditions:
        return f" (`{key}` is a condition: put it under the rule's `when:`)"
    return ""


def _is_tag(part: str) -> bool:
    # pydantic inserts validator names like "function-after[...]" into locations
    return "[" in part or part in ("str", "bool", "int", "list", "tuple", "dict")


def suggest(word: str, candidates: list[str]) -> str:
    """` (did you mean 'x'?)` for the closest candidate, '' when none is close."""
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
