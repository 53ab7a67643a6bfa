"""The inbox page: every copy the sandbox received, and one copy in full.

Plain server-rendered HTML with relative links, so it works wherever the app is mounted.
A message's HTML is shown in ``<iframe sandbox srcdoc=...>``: no scripts, no same-origin
access, so whatever a template produced cannot touch the page around it.
"""

from __future__ import annotations

import json
import time
from html import escape
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from tidings.sandbox.core import Sandbox
from tidings.sandbox.messages_api import Endpoint
from tidings.sandbox.state import JSON, MessageCopy

LIST_LIMIT = 500

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#222}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#f4f4f4}code,pre{font-size:13px}
pre{white-space:pre-wrap;background:#f8f8f8;padding:8px}iframe{width:100%;height:28rem;
border:1px solid #ccc}.muted{color:#777}
table.kv{width:auto}table.kv td{border:0;padding:0 8px 0 0}
.ev-failed{color:#b00}.ev-delivered{color:#070}
"""


def _page(title: str, body: str, refresh: bool = False) -> HTMLResponse:
    meta = '<meta http-equiv="refresh" content="5">' if refresh else ""
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'>{meta}<title>{escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def _when(epoch: float) -> str:
    return (
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) + f".{int(epoch % 1 * 1000):03d}"
    )


def _readable(value: object) -> str:
    """A field as a person reads it (escaped HTML): a list of addresses or tags as a comma
    separated line, a mapping (variables, options) as a small table, never a Python repr."""
    if value is None or value == "" or value == [] or value == {}:
        return "<span class='muted'>none</span>"
    if isinstance(value, list):
        return escape(", ".join(str(item) for item in value))
    if isinstance(value, dict):
        rows = "".join(
            f"<tr><td><code>{escape(str(k))}</code></td><td>{escape(_scalar(v))}</td></tr>"
            for k, v in value.items()
        )
        return f"<table class='kv'>{rows}</table>"
    return escape(str(value))


def _scalar(value: object) -> str:
    if isinstance(value, str):
        return value
    # A variable Mailgun was given as JSON: shown as the JSON it was, not as Python.
    return json.dumps(value, ensure_ascii=False)


def _subject(copy: MessageCopy) -> str:
    return escape(copy.subject) or "(no subject)"


def _status(events: list[JSON]) -> str:
    return str(events[-1]["event"]) if events else ""


def inbox_endpoints(sandbox: Sandbox) -> dict[str, Endpoint]:
    store = sandbox.store

    def events_of(copy: MessageCopy) -> list[JSON]:
        log = store.logs.get(copy.domain)
        if log is None:
            return []
        records = log.by_recipient.get(copy.recipient.lower(), [])
        return [
            r.item for r in records if r.item["message"]["headers"]["message-id"] == copy.message_id
        ]

    async def inbox(request: Request) -> Response:
        rows = []
        for copy in list(reversed(store.messages))[:LIST_LIMIT]:
            rows.append(
                f"<tr><td>{_when(copy.received_at)}</td><td>{escape(copy.recipient)}</td>"
                f"<td><a href='messages/{copy.key}'>{_subject(copy)}</a></td>"
                f"<td>{escape(copy.sender)}</td><td>{escape(_status(events_of(copy)))}</td></tr>"
            )
        table = (
            "<table><tr><th>received</th><th>recipient</th><th>subject</th><th>from</th>"
            f"<th>last event</th></tr>{''.join(rows)}</table>"
            if rows
            else "<p class='muted'>No messages yet. Send one to POST /v3/{domain}/messages.</p>"
        )
        body = (
            f"<h1>Sandbox inbox</h1><p class='muted'>{len(store.messages)} copies · domains: "
            f"{escape(', '.join(sorted(store.domains)))} · <a href='api/messages'>JSON</a> · "
            f"<a href='api/stats'>stats</a> · <a href='api/faults'>faults</a></p>{table}"
        )
        return _page("Sandbox inbox", body, refresh=True)

    async def message(request: Request) -> Response:
        copy = store.messages_by_key.get(request.path_params["key"])
        if copy is None:
            return _page("Not found", "<p>No such message. <a href='../'>Back</a></p>")
        info = copy.describe()
        fields = "".join(
            f"<tr><th>{escape(name)}</th><td>{_readable(info[name])}</td></tr>"
            for name in (
                "id",
                "from",
                "recipient",
                "to",
                "cc",
                "bcc",
                "subject",
                "tags",
                "variables",
                "options",
                "domain",
            )
        )
        headers = "".join(
            f"<tr><th>{escape(k)}</th><td>{escape(_scalar(v))}</td></tr>"
            for k, v in copy.headers.items()
        )
        mid = quote(copy.message_id, safe="@")
        parts = "".join(
            f"<li><a href='../api/messages/{mid}/{which}/{n}'>{escape(p.filename)}</a> "
            f"<span class='muted'>{escape(p.content_type)}, {len(p.data)} bytes, sha256 "
            f"{p.sha256[:12]}…</span></li>"
            for which, group in (("attachments", copy.attachments), ("inline", copy.inline))
            for n, p in enumerate(group)
        )
        events = "".join(
            f"<tr class='ev-{escape(str(e['event']))}'><td>{_when(float(e['timestamp']))}</td>"
            f"<td>{escape(str(e['event']))}</td><td>{escape(str(e.get('severity', '')))}</td>"
            f"<td>{escape(str(e.get('reason', '')))}</td>"
            f"<td>{escape(str((e.get('delivery-status') or {}).get('code', '')))} "
            f"{escape(str((e.get('delivery-status') or {}).get('message', '')))}</td></tr>"
            for e in events_of(copy)
        )
        html_part = (
            f'<h2>HTML</h2><iframe sandbox srcdoc="{escape(copy.html, quote=True)}"></iframe>'
            if copy.html
            else ""
        )
        text_part = f"<h2>Text</h2><pre>{escape(copy.text)}</pre>" if copy.text else ""
        body = (
            f"<p><a href='../'>← inbox</a></p><h1>{escape(copy.subject) or '(no subject)'}</h1>"
            f"<table>{fields}</table>{html_part}{text_part}"
            f"<h2>Headers</h2><table>{headers or '<tr><td class=muted>none</td></tr>'}</table>"
            f"<h2>Attachments</h2><ul>{parts or '<li class=muted>none</li>'}</ul>"
            "<h2>Events</h2><table><tr><th>time</th><th>event</th><th>severity</th>"
            f"<th>reason</th><th>delivery status</th></tr>{events}</table>"
        )
        return _page(copy.subject or "message", body)

    return {"inbox": inbox, "message": message}
