"""`mailbot rules ...`: check the rule files and write their JSON Schema for editors."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from .errors import MailbotError
from .rules import FILE_MODELS

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _configured_dirs(ctx: click.Context) -> tuple[Path | None, Path | None]:
    """rules_dir and templates_dir from config.yaml, or (None, None) when there is no usable config."""
    from .config import default_config_path, load_settings

    obj = ctx.find_root().obj or {}
    path = default_config_path(obj.get("config_path"))
    if obj.get("config_path") is None and not path.is_file():
        return None, None
    settings = load_settings(path)  # an explicit but broken config is an error worth showing
    return settings.rules_dir, settings.templates_dir


def _resolve(ctx: click.Context, rules_dir: str | None, templates_dir: str | None, *,
             need_templates: bool = True) -> tuple[Path, Path | None]:
    if rules_dir and (templates_dir or not need_templates):
        return Path(rules_dir), Path(templates_dir) if templates_dir else None
    try:
        cfg_rules, cfg_templates = _configured_dirs(ctx)
    except MailbotError:
        if rules_dir is None:
            raise
        cfg_rules = cfg_templates = None
    rules = Path(rules_dir) if rules_dir else cfg_rules
    if rules is None:
        raise click.UsageError("no config.yaml found: pass --rules-dir (or --config)")
    templates = Path(templates_dir) if templates_dir else cfg_templates
    if templates is None and (rules.parent / "templates").is_dir():
        templates = rules.parent / "templates"  # the usual layout: rules/ and templates/ side by side
    return rules, templates


def _template_check(templates_dir: Path | None) -> tuple[frozenset[str] | None, list[str]]:
    """Known template names and the templates' own problems; (None, []) when there are none to check."""
    if templates_dir is None:
        return None, []
    from .digest import check_templates
    from .render import Renderer

    renderer = Renderer(templates_dir)
    problems = renderer.check()
    if templates_dir.is_dir():
        problems += check_templates(templates_dir)
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

    rules, templates = _resolve(ctx, rules_dir, templates_dir)
    names, template_problems = _template_check(templates)
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
    rules, _ = _resolve(ctx, rules_dir, None, need_templates=False)
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
@click.pass_context
def explain_command(ctx: click.Context, mail_file: str, as_json: bool) -> None:
    """Dry run for one mail: classification, matching, rules, replies. No side effects."""
    from .app import create_app
    from .config import default_config_path, load_settings
    from .explain import explain, explain_text

    settings = load_settings(default_config_path((ctx.find_root().obj or {}).get("config_path")))
    url = settings.database.url
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        # Connecting would create the file: explain against an empty in-memory store instead.
        settings = settings.model_copy(update={"database": settings.database.model_copy(update={"url": "sqlite://"})})
    app = create_app(settings)
    if settings.database.url == "sqlite://":
        from .migrate import upgrade

        upgrade(app.engine)  # the same connection serves the whole command (one thread)
    try:
        result = explain(app, Path(mail_file).read_bytes())
    finally:
        app.close()
    click.echo(json.dumps(result, indent=2, ensure_ascii=False, default=str) if as_json
               else explain_text(result))
