"""`mailbot rules ...`: check the rule files and write their JSON Schema for editors."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import yaml

from .errors import MailbotError
from .render import LANGUAGES
from .rules import FILE_MODELS

if TYPE_CHECKING:
    from .config import Settings

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


# What the rules commands never use: they connect to no mail server. An unset ${VAR} in a mail
# server's host, password or OAuth2 sign-in (set only where the robot runs) is no reason to
# refuse them.
_SERVER_KEYS = ("host", "password", "oauth2")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def rules_settings(path: Path) -> Settings:
    """config.yaml as the rules commands read it: validated as always, but an environment
    variable used only for a mail server's host, password or OAuth2 sign-in may be unset (it
    stays `${NAME}`)."""
    from .config import load_settings

    return load_settings(path, environ={**_server_placeholders(path), **os.environ})


def _server_placeholders(path: Path) -> dict[str, str]:
    """`${NAME}` for each variable only `imap`, `mailboxes` or `smtp` host, password or
    `oauth2` block use."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}  # load_settings says what is wrong
    if not isinstance(data, dict):
        return {}
    sections = [data.get("imap"), data.get("smtp"), *(data.get("mailboxes") or [])]
    # A token endpoint must be a web address to pass validation, even when it comes from the
    # environment as a whole: such a variable stands in as one that is (and is never asked).
    in_urls = {name for section in sections if isinstance(section, dict) and isinstance(section.get("oauth2"), dict)
               for name in _ENV_REF.findall(str(section["oauth2"].get("token_url", "")))}
    # Taken out of this copy of the file: what is left says which variables are used elsewhere.
    server_values = [section.pop(key, None) for section in sections if isinstance(section, dict)
                     for key in _SERVER_KEYS]
    used_for_servers = {name for value in server_values if value is not None
                        for name in _ENV_REF.findall(value if isinstance(value, str) else yaml.safe_dump(value))}
    used_elsewhere = set(_ENV_REF.findall(yaml.safe_dump(data)))
    return {name: f"https://unset.invalid/{name}" if name in in_urls else f"${{{name}}}"
            for name in used_for_servers - used_elsewhere}


def _configured(ctx: click.Context) -> Settings | None:
    """config.yaml (`rules_settings`), or None when there is none to use."""
    from .config import default_config_path

    obj = ctx.find_root().obj or {}
    path = default_config_path(obj.get("config_path"))
    if obj.get("config_path") is None and not path.is_file():
        return None
    return rules_settings(path)  # an explicit but broken config is an error worth showing


def _resolve(ctx: click.Context, rules_dir: str | None, templates_dir: str | None, *,
             need_templates: bool = True) -> tuple[Path, Path | None, tuple[str, ...]]:
    """The rules folder, the templates folder and the languages each template must have (the
    config's; all four without one)."""
    if rules_dir and (templates_dir or not need_templates):
        return Path(rules_dir), Path(templates_dir) if templates_dir else None, LANGUAGES
    try:
        settings = _configured(ctx)
    except MailbotError:
        if rules_dir is None:
            raise
        settings = None
    rules = Path(rules_dir) if rules_dir else settings.rules_dir if settings else None
    if rules is None:
        raise click.UsageError("no config.yaml found: pass --rules-dir (or --config)")
    templates = Path(templates_dir) if templates_dir else settings.templates_dir if settings else None
    if templates is None and (rules.parent / "templates").is_dir():
        templates = rules.parent / "templates"  # the usual layout: rules/ and templates/ side by side
    return rules, templates, tuple(settings.languages) if settings else LANGUAGES


def _template_check(templates_dir: Path | None, languages: tuple[str, ...] = LANGUAGES
                    ) -> tuple[frozenset[str] | None, list[str]]:
    """Known template names and the templates' own problems; (None, []) when there are none to check."""
    if templates_dir is None:
        return None, []
    from .render import Renderer
    from .template_check import template_problems

    renderer = Renderer(templates_dir)  # the same check as a reload's: replies, digest, staff notice
    problems = template_problems(renderer, digest=templates_dir.is_dir(), languages=languages)
    return renderer.names(), [_openable(problem, templates_dir) for problem in problems]


def _openable(problem: str, templates_dir: Path) -> str:
    """`<folder name>/<file>:LINE: message` (as the renderer and the digest name a template)
    with the templates folder as given or configured, so the path opens from the current
    directory like the rule files' paths: `tpl/status/nl.txt.j2` was relative to the config's folder."""
    shown = f"{templates_dir.name}/"
    return os.path.join(templates_dir, problem[len(shown):]) if problem.startswith(shown) else problem


@click.group("rules")
def rules_group() -> None:
    """Routing rules: check them, explain a mail, write the editor schema."""


@rules_group.command("check")
@click.option("--rules-dir", type=click.Path(file_okay=False), help="rules folder (default: config's rules_dir)")
@click.option("--templates-dir", type=click.Path(file_okay=False),
              help="templates folder (default: config's templates_dir)")
@click.pass_context
def check_command(ctx: click.Context, rules_dir: str | None, templates_dir: str | None) -> None:
    """Validate rules/ (and templates/); print `file:line: message` per problem; exit 1 on any."""
    from .rules_check import check_dir

    rules, templates, languages = _resolve(ctx, rules_dir, templates_dir)
    names, template_problems = _template_check(templates, languages)
    result = check_dir(rules, template_names=names)
    problems = result.problems + template_problems
    for problem in problems:
        click.echo(problem)
    if problems:
        click.echo(f"{len(problems)} problem(s); the rules were not accepted", err=True)
        ctx.exit(1)
    suffix = f", {len(names)} templates" if names is not None else ""
    click.echo(f"{result.summary}{suffix}")
    if names is None:
        click.echo("templates not checked: no templates folder found (pass --templates-dir)", err=True)


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema for each rule file, keyed by file name (`routing.schema.json`, ...)."""
    schemas = {}
    for name, model in FILE_MODELS.items():
        stem = name.removesuffix(".yaml")
        schema = {"$schema": SCHEMA_DIALECT, **model.model_json_schema(), "title": f"mailbot rules/{name}"}
        schemas[f"{stem}.schema.json"] = schema
    return schemas


@rules_group.command("schema")
@click.option("--rules-dir", type=click.Path(file_okay=False), help="rules folder (default: config's rules_dir)")
@click.option("--check", "check_only", is_flag=True, help="exit 1 if the written schema is out of date")
@click.pass_context
def schema_command(ctx: click.Context, rules_dir: str | None, check_only: bool) -> None:
    """Write JSON Schema for the rule files into <rules-dir>/schema/, for editor autocompletion."""
    rules, _, _ = _resolve(ctx, rules_dir, None, need_templates=False)
    out = rules / "schema"
    stale = []
    for filename, schema in json_schemas().items():
        text = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
        target = out / filename
        current = target.read_text(encoding="utf-8") if target.is_file() else None
        if current == text:
            continue
        stale.append(str(target))
        if not check_only:
            out.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    if check_only and stale:
        click.echo("out of date: " + ", ".join(stale))
        ctx.exit(1)
    click.echo(f"{'checked' if check_only else 'wrote'} {len(FILE_MODELS)} schemas in {out}"
               + ("" if check_only else f" ({len(stale)} changed)"))


@rules_group.command("explain")
@click.argument("mail_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.option("--show-reply", is_flag=True, help="print the text of each reply as it would be sent")
@click.option("--last-good", is_flag=True,
              help="when the rule or template files are refused, explain with the last good set the robot "
                   "saved in the database (what a running robot uses) instead of stopping")
@click.pass_context
def explain_command(ctx: click.Context, mail_file: str, as_json: bool, show_reply: bool, last_good: bool) -> None:
    """Dry run for one mail: classification, matching, rules, replies. No side effects.

    It explains with the rule and template files on disk, checked as `rules check` checks
    them; when they are refused it says why and exits 1 (--last-good: explains with the set
    a running robot fell back on)."""
    from .app import create_app
    from .cli import rules_refusal_as_warning
    from .config import default_config_path
    from .db_engine import make_engine
    from .explain import explain, explain_text
    from .rules_check import check_dir

    settings = rules_settings(default_config_path((ctx.find_root().obj or {}).get("config_path")))
    names, problems = _template_check(settings.templates_dir, tuple(settings.languages))
    problems = check_dir(settings.rules_dir, template_names=names).problems + problems
    url = settings.database.url
    no_database = url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists()
    if problems:
        for problem in problems:
            click.echo(problem, err=True)
        if not last_good or no_database:
            click.echo(f"{len(problems)} problem(s) in the rule or template files: not explained"
                       + (" (there is no database, so no last good set either)" if last_good else
                          " (run 'mailbot rules check'; --last-good explains with the set a running robot uses)"),
                       err=True)
            ctx.exit(1)
        click.echo(f"*** {len(problems)} problem(s) in the rule or template files: explained with the last good "
                   "set saved in the database, not with the files on disk ***", err=True)
    engine = None
    if no_database:
        # Connecting would create the file: explain against an empty in-memory store instead,
        # its schema made before the robot reads it (one connection serves the whole command).
        from .migrate import upgrade

        settings = settings.model_copy(update={"database": settings.database.model_copy(update={"url": "sqlite://"})})
        engine = make_engine("sqlite://")
        upgrade(engine)
    with rules_refusal_as_warning():  # the banner above said it: the log need not shout it again
        app = create_app(settings, engine=engine)
    try:
        result = explain(app, Path(mail_file).read_bytes(), show_reply=show_reply)
    finally:
        app.close()
    click.echo(json.dumps(result, indent=2, ensure_ascii=False, default=str) if as_json
               else explain_text(result))
