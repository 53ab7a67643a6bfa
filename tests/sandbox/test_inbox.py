"""The inbox page shows a message as a person reads it: addresses and tags as lines,
variables, options and headers as name/value rows; never a Python repr."""

from __future__ import annotations

import re
from html import unescape

import requests

from tests.sandbox.conftest import Running, basic_message, send


def _row(page: str, name: str) -> str:
    match = re.search(rf"<tr><th>{name}</th><td>(.*?)</td></tr>(?=<tr><th>|</table><h2>)", page)
    assert match, name
    return match.group(1)


def test_a_message_page_reads_like_a_message(running: Running) -> None:
    data = basic_message(
        to="Ann <ann@example.test>, bob@example.test",
        cc="carol@example.test",
        **{
            "o:tag": ["welcome", "onboarding"],
            "v:tidings-id": "01abc",
            "v:plan": '{"tier": "gold"}',
            "h:X-Campaign": "spring",
            "o:tracking": "yes",
        },
    )
    send(running.base, data)
    stored = requests.get(running.api("/messages")).json()[0]  # one copy per recipient
    page = requests.get(f"{running.base}/sandbox/messages/{stored['key']}").text

    assert "['" not in unescape(page) and "{'" not in unescape(page)
    assert unescape(_row(page, "to")) == "Ann <ann@example.test>, bob@example.test"
    assert _row(page, "cc") == "carol@example.test"
    assert _row(page, "bcc") == "<span class='muted'>none</span>"
    assert _row(page, "tags") == "welcome, onboarding"
    variables = _row(page, "variables")
    assert "<td><code>tidings-id</code></td><td>01abc</td>" in variables
    assert "<td><code>plan</code></td><td>{&quot;tier&quot;: &quot;gold&quot;}</td>" in variables
    assert "<td><code>tracking</code></td><td>yes</td>" in _row(page, "options")
    assert "<tr><th>X-Campaign</th><td>spring</td></tr>" in page
