"""The templates checked as `mailbot rules check` checks them, before a reload puts them in force."""

from __future__ import annotations

from collections.abc import Sequence

from .render import Renderer

_CHECKED: dict[tuple[str, str, bool, tuple[str, ...] | None], tuple[str, ...]] = {}


def template_problems(renderer: Renderer, *, digest: bool = True,
                      languages: Sequence[str] | None = None) -> list[str]:
    """What `mailbot rules check` says about the templates: every reply template rendered
    (`Renderer.check`) in each of `languages` (config.yaml's: a reply template missing one is
    refused, as `rules check` refuses it; None: the Dutch files only), and the digest templates in the
    folder (`digest.check_templates`) and the staff notice's. Remembered per content and
    languages: a second robot in the process (tests) does not render them again."""
    from .digest import check_templates
    from .staff_notice import check_templates as check_notice

    wanted = tuple(languages) if languages is not None else None
    key = (str(renderer.templates_dir), renderer.fingerprint, digest, wanted)
    if key not in _CHECKED:
        problems = renderer.check(languages=wanted)
        if digest and not renderer.templates.missing:
            problems += check_templates(renderer.templates_dir) + check_notice(renderer.templates_dir)
        if len(_CHECKED) >= 32:
            _CHECKED.clear()
        _CHECKED[key] = tuple(problems)
    return list(_CHECKED[key])
