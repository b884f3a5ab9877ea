"""Reply templates: a sandboxed Jinja2 environment over `templates/`.

Layout (see templates/README.md):

    templates/<name>/<lang>.txt.j2     plain-text part   (not escaped)
    templates/<name>/<lang>.html.j2    HTML part         (autoescaped)
    templates/<name>/<lang>.subject.j2 optional subject prefix for this template
    templates/_shared/<lang>.subject.j2             subject prefix, e.g. "Uw klacht"
    templates/_shared/<lang>.txt.j2 / .html.j2      greeting, closing and signature
    templates/_shared/base.html.j2                  the HTML document around it all

Dutch is the fallback when a template has no file for the requested language.
The context variables of each template are documented in `template_vars.SAMPLES`.

A `Renderer` renders from a `TemplateSet`: the `*.j2` files as read at one moment, held in
memory. An edit on disk is not used until the per-poll reload check (`routing_stage`) has
found it valid and calls `use`; until then the last good copy keeps rendering.
"""

from __future__ import annotations

import hashlib
import os
import re
import textwrap
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import BaseLoader, Environment, StrictUndefined, TemplateNotFound, TemplateSyntaxError
from jinja2.loaders import split_template_path
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup, escape

from . import sanitize
from .errors import RulesError
from .template_vars import SAMPLES, allowed_names, sample_context, undeclared_names, unknown_attributes, variants

FALLBACK_LANGUAGE = "nl"
LANGUAGES = ("nl", "fr", "en", "de")
SHARED_DIR = "_shared"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class RenderedReply:
    """One template rendered in one language, ready for `compose_reply`."""

    template: str
    language: str  # the language actually used (after fallback)
    subject_prefix: str  # e.g. "Uw klacht"; compose adds "[REF] original subject"
    text: str
    html: str


def _paragraphs(value: object) -> Markup:
    """Escape multi-line text and turn blank lines into <p> and newlines into <br>."""
    blocks = re.split(r"\n\s*\n", str(value).replace("\r\n", "\n").strip())
    return Markup("\n").join(
        Markup("<p>{}</p>").format(Markup("<br>\n").join(escape(line) for line in block.split("\n")))
        for block in blocks if block.strip()
    )


def _reflow(value: object, width: int = 74) -> str:
    """A text paragraph that inserts a name of any length: its lines joined and wrapped again
    at `width`, never inside a word (nor at a no-break space), ending in a newline."""
    words = " ".join(w for w in re.split(r"[ \t\r\n]+", str(value)) if w)
    return textwrap.fill(words, width=width, break_long_words=False, break_on_hyphens=False) + "\n"


def oneline(value: object) -> str:
    """Names and subjects in body text: one visible line, no controls."""
    return sanitize.clean_text(str(value))


def _language(language: str) -> str:
    """`nl-BE`, `FR`, `en_GB` → two-letter code; anything else → ''."""
    code = re.split(r"[-_]", language.strip().lower(), maxsplit=1)[0]
    return code if re.fullmatch(r"[a-z]{2}", code) else ""


@dataclass(frozen=True)
class TemplateSet:
    """The template files of `templates/` as read at one moment (`read_templates`).

    `files`: every `*.j2` file by its path relative to the folder (`ack_investigation/nl.txt.j2`);
    `folders`: the top-level folders (template names, `_shared`, `_digest`); `missing`: there
    was no folder at all. `fingerprint` hashes all of it: equal sets, equal fingerprints.
    """

    files: Mapping[str, bytes]
    folders: frozenset[str]
    missing: bool = False
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha256(b"missing\0" if self.missing else b"")
        for folder in sorted(self.folders):
            digest.update(b"d\0" + folder.encode() + b"\0")
        for name in sorted(self.files):
            digest.update(b"f\0" + name.encode() + b"\0" + self.files[name] + b"\0")
        object.__setattr__(self, "fingerprint", digest.hexdigest())


def read_templates(templates_dir: Path, *, max_depth: int = 4) -> TemplateSet:
    """Every `*.j2` file under `templates_dir` (hidden files and folders left out, symlinks
    followed as Jinja's file loader does). A few hundred small files: cheap once a poll."""
    root = Path(templates_dir)
    if not root.is_dir():
        return TemplateSet({}, frozenset(), missing=True)
    files: dict[str, bytes] = {}
    folders: set[str] = set()
    for folder, subfolders, names in os.walk(root, followlinks=True):
        relative = Path(folder).relative_to(root)
        depth = len(relative.parts)
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(".") and depth < max_depth)
        if depth == 0:
            folders.update(subfolders)
        for name in names:
            if name.endswith(".j2") and not name.startswith("."):
                try:
                    files[(relative / name).as_posix()] = (Path(folder) / name).read_bytes()
                except OSError:
                    continue  # vanished or unreadable: as if it were not there
    return TemplateSet(files, frozenset(folders))


class _SetLoader(BaseLoader):
    """Loads templates from a `TemplateSet`; file names in tracebacks stay the real paths,
    so runtime errors are still told as `templates/<file>:LINE`."""

    def __init__(self, root: Path, templates: TemplateSet) -> None:
        self.root = root
        self.templates = templates

    def get_source(self, environment: Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        name = "/".join(split_template_path(template))
        data = self.templates.files.get(name)
        if data is None:
            raise TemplateNotFound(template)
        return data.decode("utf-8"), str(self.root / name), lambda: True

    def list_templates(self) -> list[str]:
        return sorted(self.templates.files)


class _Loaded:
    """One template set with its Jinja environment and folder listings; replaced as a whole."""

    def __init__(self, root: Path, templates: TemplateSet) -> None:
        self.templates = templates
        self.env = ImmutableSandboxedEnvironment(
            loader=_SetLoader(root, templates),
            undefined=StrictUndefined,
            autoescape=lambda name: bool(name) and name.endswith(".html.j2"),
            auto_reload=False,  # a new set gets a new environment (`Renderer.use`)
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self.env.filters["paragraphs"] = _paragraphs
        self.env.filters["oneline"] = oneline
        self.env.filters["reflow"] = _reflow
        listing: dict[str, set[str]] = {}
        for path in templates.files:
            folder, _, name = path.rpartition("/")
            listing.setdefault(folder, set()).add(name)
        self.listing = {folder: frozenset(names) for folder, names in listing.items()}
        self.names = frozenset(f for f in templates.folders if _NAME.match(f))


class Renderer:
    """Renders `templates/<name>/<lang>.{txt,html}.j2` from the template set in use: the files
    as read when built, or the set last passed to `use` (the reload check's last good one)."""

    def __init__(self, templates_dir: Path, templates: TemplateSet | None = None) -> None:
        self.templates_dir = Path(templates_dir)
        self._loaded = _Loaded(self.templates_dir, templates if templates is not None
                               else read_templates(self.templates_dir))

    @property
    def templates(self) -> TemplateSet:
        return self._loaded.templates

    @property
    def fingerprint(self) -> str:
        return self._loaded.templates.fingerprint

    def use(self, source: TemplateSet | Renderer) -> None:
        """Render from now on from `source` (a checked set, or a renderer that checked it:
        its compiled templates are kept). One assignment: a render in flight finishes on
        the set it started with."""
        self._loaded = source._loaded if isinstance(source, Renderer) else _Loaded(self.templates_dir, source)

    def names(self) -> frozenset[str]:
        """The template names: sub-directories of templates/ not starting with `_`."""
        return self._loaded.names

    def languages(self, name: str) -> frozenset[str]:
        """Languages that have a plain-text file for this template."""
        return _languages(self._loaded, name)

    def _files(self, name: str) -> frozenset[str]:
        return self._loaded.listing.get(name, frozenset())

    def resolve_language(self, name: str, language: str) -> str:
        """The requested language if the template has it, else Dutch."""
        return _resolve_language(self._loaded, name, language)

    def render(self, name: str, language: str, context: Mapping[str, Any]) -> RenderedReply:
        """Render one template; a template error raises RulesError naming file and line."""
        return self._render(self._loaded, name, language, context)

    def _render(self, loaded: _Loaded, name: str, language: str, context: Mapping[str, Any]) -> RenderedReply:
        if not _NAME.match(name) or name not in loaded.names:
            raise RulesError(f"unknown template {name!r}")
        lang = _resolve_language(loaded, name, language)
        ctx = {**context, "lang": lang}
        text = self._render_file(loaded, f"{name}/{lang}.txt.j2", ctx)
        text = re.sub(r"\n{3,}", "\n\n", re.sub(r"[ \t]+\n", "\n", text)).strip() + "\n"  # tidy optional blocks
        html = self._render_file(loaded, f"{name}/{lang}.html.j2", ctx).strip() + "\n"
        subject_file = (f"{name}/{lang}.subject.j2" if f"{lang}.subject.j2" in loaded.listing.get(name, ())
                        else f"{SHARED_DIR}/{lang}.subject.j2")
        prefix = sanitize.header_text(self._render_file(loaded, subject_file, ctx), 60)
        return RenderedReply(template=name, language=lang, subject_prefix=prefix, text=text, html=html)

    def _render_file(self, loaded: _Loaded, path: str, context: Mapping[str, Any]) -> str:
        try:
            return loaded.env.get_template(path).render(context)
        except Exception as err:  # Jinja errors, but also e.g. a TypeError inside an expression
            raise RulesError(self._describe(err, path)) from err

    def _describe(self, err: Exception, path: str) -> str:
        """`templates/<file>:LINE: message` for a Jinja error."""
        where, line = path, None
        if isinstance(err, TemplateNotFound):
            return f"{self._display(str(err.name or path))}:1: template file missing"
        if isinstance(err, TemplateSyntaxError):
            where, line = err.name or path, err.lineno
        else:  # runtime error: Jinja rewrites the traceback to template file/line frames
            root = self.templates_dir.resolve()
            for frame in reversed(traceback.extract_tb(err.__traceback__)):
                if frame.filename and Path(frame.filename).resolve().is_relative_to(root):
                    where = Path(frame.filename).resolve().relative_to(root).as_posix()
                    line = frame.lineno
                    break
        message = getattr(err, "message", None) or str(err) or type(err).__name__
        return f"{self._display(where)}:{line or 1}: {message}"

    def _display(self, relative: str) -> str:
        return f"{self.templates_dir.name}/{relative}"

    def check(self, sample_context_factory: Callable[[str], Mapping[str, Any]] | None = None,
              languages: tuple[str, ...] | None = None) -> list[str]:
        """Every template checked; problems as `templates/<file>:LINE: message`.

        Each variable and attribute a template file names is checked against what run time
        gives it (`template_vars`), in every branch; each template is rendered in every
        language with the sample context and its variants. `languages` (config.yaml's): each
        template needs its files in each of them, or a citizen writing in one gets Dutch;
        None (the reload check) asks only for Dutch, as before."""
        factory = sample_context_factory or sample_context
        loaded = self._loaded
        files = loaded.templates.files
        problems: list[str] = []
        if loaded.templates.missing:
            return [f"{self.templates_dir}: templates directory missing"]
        for lang in languages or LANGUAGES:
            if f"{SHARED_DIR}/{lang}.subject.j2" not in files:
                problems.append(f"{self._display(f'{SHARED_DIR}/{lang}.subject.j2')}:1: subject prefix missing")
        for name in sorted(set(SAMPLES) - loaded.names):  # the robot sends these itself, whatever the rules say
            problems.append(f"{self._display(f'{name}/{FALLBACK_LANGUAGE}.txt.j2')}:1: file missing "
                            f"(template {name!r} is used by the robot itself)")
        told: set[str] = set()  # `file:'name'` found undefined without rendering
        rendered: list[str] = []
        parsed: dict[str, tuple[Any, dict[str, int]] | None] = {}
        for name in sorted(loaded.names):
            context = dict(factory(name))
            named = self._named_variables(loaded, name, context, problems, told, parsed)
            for lang in LANGUAGES:
                txt, html = (f"{name}/{lang}.{kind}.j2" for kind in ("txt", "html"))
                required = lang == FALLBACK_LANGUAGE or lang in (languages or ())
                if txt not in files and html not in files and not required:
                    continue  # falls back to Dutch, which is checked on its own
                why = "" if lang == FALLBACK_LANGUAGE or txt in files or html in files else (
                    f" (language {lang!r} is in languages: without it the reply is sent in Dutch)")
                problems.extend(f"{self._display(part)}:1: file missing{why}" for part in (txt, html)
                                if part not in files)
                if txt in files and html in files:
                    rendered.extend(self._render_problems(loaded, name, lang, context, named))
        problems.extend(p for p in rendered if _undefined_at(p) not in told)
        return sorted(dict.fromkeys(problems))

    def _named_variables(self, loaded: _Loaded, name: str, context: Mapping[str, Any], problems: list[str],
                         told: set[str], parsed: dict[str, tuple[Any, dict[str, int]] | None]) -> dict[str, set[str]]:
        """The variables the files of template `name` (and `_shared`'s) name, by language
        (`base` for base.html.j2); a name run time never gives, or an attribute it never has,
        added to `problems` (and `file:'name'` to `told`). `parsed`: each file's AST and names,
        kept for the next template (`_shared` is read by all)."""
        allowed = allowed_names(dict(context))
        named: dict[str, set[str]] = {}
        for path in sorted(loaded.templates.files):
            folder, _, file = path.rpartition("/")
            if folder not in (name, SHARED_DIR):
                continue
            if path not in parsed:
                parsed[path] = _parse(loaded, path)
            found = parsed[path]
            if found is None:
                continue  # a syntax error: told when the file is rendered
            ast, variables = found
            named.setdefault(file.split(".")[0], set()).update(variables)
            for variable, line in variables.items():
                if variable not in allowed:
                    problems.append(f"{self._display(path)}:{line}: {variable!r} is undefined")
                    told.add(f"{self._display(path)}:{variable!r}")
            for line, variable, attr, known in unknown_attributes(ast, context):
                problems.append(f"{self._display(path)}:{line}: {variable!r} has no attribute {attr!r} "
                                f"({variable} has {', '.join(known)})")
                told.add(f"{self._display(path)}:{attr!r}")
        return named

    def _render_problems(self, loaded: _Loaded, name: str, lang: str, context: Mapping[str, Any],
                         named: dict[str, set[str]]) -> list[str]:
        """Template `name` rendered in `lang` with the sample context and each variant of it that
        changes a variable its files (or `_shared`'s) name."""
        used = named.get(lang, set()) | named.get("base", set())
        problems = []
        for ctx in [dict(context), *variants(context, used)]:
            try:
                self._render(loaded, name, lang, ctx)
            except RulesError as err:
                problems.append(str(err))
        return problems


def _parse(loaded: _Loaded, path: str) -> tuple[Any, dict[str, int]] | None:
    """A template file's AST and the variables it reads; None when it does not parse."""
    try:
        ast = loaded.env.parse(loaded.templates.files[path].decode("utf-8"), path, path)
    except (TemplateSyntaxError, UnicodeDecodeError):
        return None
    return ast, undeclared_names(ast)


def _undefined_at(problem: str) -> str | None:
    """`file:'name'` of a `file:LINE: 'name' is undefined` (or `… has no attribute 'name'`)
    problem found by rendering: a name found without rendering is told once per file, at the
    line it first appears on, with what it could be."""
    found = re.fullmatch(r"(.+?):\d+: (?:('[^']*') is undefined|.* has no attribute ('[^']*'))", problem)
    return f"{found[1]}:{found[2] or found[3]}" if found else None


def _languages(loaded: _Loaded, name: str) -> frozenset[str]:
    return frozenset(f.split(".")[0] for f in loaded.listing.get(name, ()) if f.endswith(".txt.j2"))


def _resolve_language(loaded: _Loaded, name: str, language: str) -> str:
    code = _language(language)
    return code if code and code in _languages(loaded, name) else FALLBACK_LANGUAGE
