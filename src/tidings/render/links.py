"""UTM parameters on an email's links (Courier's ``metadata.utm``).

Courier adds ``utm_source``, ``utm_medium``, ``utm_campaign``, ``utm_term`` and
``utm_content`` to the links of a message. Here they are added to every absolute
``http(s)`` link of the rendered HTML (``<a href>``) and to the same URLs where the text
part shows them; a parameter the link already has is kept as the sender wrote it.
Mailgun's own variables (``%unsubscribe_url%``) and other schemes are left alone.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

UTM_FIELDS = ("source", "medium", "campaign", "term", "content")
_HREF = re.compile(r'(<a\b[^>]*?\bhref=")([^"]+)(")', re.IGNORECASE)


def with_utm(url: str, utm: Mapping[str, str]) -> str:
    """``url`` with the ``utm_*`` parameters it does not have yet."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return url
    query = parse_qsl(parts.query, keep_blank_values=True)
    present = {key for key, _ in query}
    added = [
        (f"utm_{name}", value)
        for name in UTM_FIELDS
        if (value := utm.get(name)) and f"utm_{name}" not in present
    ]
    if not added:
        return url
    new_query = parts.query + ("&" if parts.query else "") + urlencode(added)
    return urlunsplit(parts._replace(query=new_query))


def add_utm(html_body: str, text: str, utm: Mapping[str, str]) -> tuple[str, str]:
    """``(html, text)`` with UTM parameters on every http(s) link."""
    if not any(utm.get(name) for name in UTM_FIELDS):
        return html_body, text
    changed: dict[str, str] = {}

    def replace(match: re.Match[str]) -> str:
        original = html.unescape(match.group(2))
        updated = with_utm(original, utm)
        if updated != original:
            changed[original] = updated
        return match.group(1) + html.escape(updated, quote=True) + match.group(3)

    new_html = _HREF.sub(replace, html_body)
    # Longest first, so that a URL that is a prefix of another is not replaced inside it.
    for original in sorted(changed, key=len, reverse=True):
        text = re.sub(re.escape(original) + r"(?![\w%&=?/#.-])", changed[original], text)
    return new_html, text


__all__ = ["UTM_FIELDS", "add_utm", "with_utm"]
