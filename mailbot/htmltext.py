"""HTML → plain text for reading, quoting and classification. Pure.

inscriptis renders layout (tables, lists, line breaks) like a text browser and drops
<script>/<style>; it was the most faithful and fast enough of the converters measured
(see the parse note). A tiny stdlib fallback keeps the robot going if lxml chokes.
"""

from __future__ import annotations

import html
import re

from inscriptis import get_text
from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.model.config import ParserConfig

_CONFIG = ParserConfig(css=CSS_PROFILES["strict"], display_links=False, display_images=False)
_DROP = re.compile(r"<(script|style|head|title)\b.*?</\1\s*>", re.I | re.S)
_TAG = re.compile(r"<[^>]*>")
_BLOCK = re.compile(r"<\s*(br|/p|/div|/tr|/li|/h\d|/blockquote)\b[^>]*>", re.I)
_BLANKS = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")


def html_to_text(markup: str) -> str:
    """The readable text of an HTML body, blocks on their own lines, scripts/styles dropped."""
    if not markup.strip():
        return ""
    markup = _DROP.sub(" ", markup)  # also guards against inscriptis rendering <title>
    try:
        text = get_text(markup, _CONFIG)
    except Exception:  # lxml gives up on some binary junk: fall back to a crude strip
        text = html.unescape(_TAG.sub("", _BLOCK.sub("\n", markup)))
    lines = [line.rstrip() for line in text.replace("\xa0", " ").splitlines()]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()
