"""The templates checked as `mailbot rules check` checks them, before a reload puts them in force."""

from __future__ import annotations

from .render import Renderer

_CHECKED: dict[tuple[str, str, bool], tuple[str, ...]] = {}


def template_problems(renderer: Renderer, *, digest: bool = True) -> list[str]:
    """What `mailbot rules check` says about the templates: every reply template rendered
    (`Renderer.check`), and the digest templates in the folder (`digest.check_templates`).
    Remembered per content: a second robot in the process (tests) does not render them again."""
    from .digest import check_templates
    from .staff_notice import check_templates as check_notice

    key = (str(renderer.templates_dir), renderer.fingerprint, digest)
    if key not in _CHECKED:
        problems = renderer.check()
        if digest and not renderer.templates.missing:
            problems += check_templates(renderer.templates_dir) + check_notice(renderer.templates_dir)
        if len(_CHECKED) >= 32:
            _CHECKED.clear()
        _CHECKED[key] = tuple(problems)
    return list(_CHECKED[key])
