"""HTML to the plain-text part of an email, with html2text.

html2text writes Markdown; an email's text part is read by people, so its output is
tidied: no line wrapping (a wrapped URL stops working), no backslash escapes at line
starts, no trailing "two spaces" line breaks, bare URLs without angle brackets, and
images replaced by their alt text. Links keep the ``[label](url)`` form, which reads well
and keeps the URL whole.
"""

from __future__ import annotations

import re

import html2text

# html2text escapes characters that would start a Markdown list or heading.
_LINE_START_ESCAPE = re.compile(r"^(\s*)\\([-+#>])", re.MULTILINE)
_NUMBER_ESCAPE = re.compile(r"^(\s*\d+)\\\.", re.MULTILINE)
_AUTOLINK = re.compile(r"<((?:https?|mailto|tel):[^<>\s]+)>")
_HR = re.compile(r"^\* \* \*$", re.MULTILINE)
_TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)
_BLANK_RUN = re.compile(r"\n{3,}")


def _converter() -> html2text.HTML2Text:
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.unicode_snob = True
    converter.ignore_emphasis = True
    converter.images_to_alt = True
    converter.default_image_alt = ""
    converter.ignore_tables = True  # layout tables, not data: keep their content only
    converter.wrap_links = False
    converter.single_line_break = False
    return converter


def html_to_text(html: str) -> str:
    """The text part for ``html``."""
    # HTML2Text keeps state between calls, so each conversion gets its own.
    text = _converter().handle(html)
    text = _LINE_START_ESCAPE.sub(r"\1\2", text)
    text = _NUMBER_ESCAPE.sub(r"\1.", text)
    text = _AUTOLINK.sub(r"\1", text)
    text = _HR.sub("---", text)
    text = _TRAILING_SPACE.sub("", text)
    text = _BLANK_RUN.sub("\n\n", text)
    return text.strip() + "\n" if text.strip() else ""
