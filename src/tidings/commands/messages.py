"""``tidings messages`` (a table of messages) and ``tidings message ID [--follow]`` (a timeline).

Both call the HTTP API of a running server; ``--follow`` reads the message's Server-Sent
Events stream and prints each new history entry and status as it happens.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tidings.commands.http import client, console, fail_on_error, print_json

# A followed message is done once it can no longer change in a way worth waiting for:
# delivered or later, or a failure. (SENT is not: delivery is what --follow waits to see.)
FOLLOW_DONE = {
    "DELIVERED",
    "OPENED",
    "CLICKED",
    "UNDELIVERABLE",
    "UNROUTABLE",
    "FILTERED",
    "CANCELED",
}

_STATUS_STYLE = {
    "ENQUEUED": "cyan",
    "SENT": "blue",
    "DELIVERED": "green",
    "OPENED": "green",
    "CLICKED": "green",
    "UNDELIVERABLE": "red",
    "UNROUTABLE": "red",
    "FILTERED": "yellow",
    "CANCELED": "yellow",
    "RETRYING": "yellow",
    "IN_DOUBT": "yellow",
    "TEMPORARY_FAILURE": "yellow",
}

TYPE_WIDTH = 17  # the longest history type, TEMPORARY_FAILURE

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_AGE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _stdout() -> Console:
    # Made per command, so that the terminal width (COLUMNS) is read when the command runs.
    return Console()


def styled(status: str | None) -> str:
    if not status:
        return ""
    style = _STATUS_STYLE.get(status)
    return f"[{style}]{escape(status)}[/{style}]" if style else escape(status)


def fmt_ms(ms: int | float | None) -> str:
    if ms is None:
        return ""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_since(value: str, now: datetime | None = None) -> int:
    """``--since``: an age (``30m``, ``2h``, ``7d``) or an ISO 8601 date or time (UTC when it
    names no zone); epoch milliseconds."""
    now = now or datetime.now(UTC)
    age = _AGE.match(value)
    if age:
        moment = now - timedelta(**{_AGE_UNITS[age.group(2)]: float(age.group(1))})
    else:
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise typer.BadParameter(
                "expected an age like 30m, 2h, 7d or an ISO date/time like 2024-05-01T12:00"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


# -- tidings messages -----------------------------------------------------------------------


def list_messages(
    status: list[str] = typer.Option([], "--status", help="Only this status (repeatable)."),
    recipient: str | None = typer.Option(None, "--recipient", help="Recipient email or id."),
    tag: list[str] = typer.Option([], "--tag", help="Only messages with this tag (repeatable)."),
    since: str | None = typer.Option(
        None, "--since", help="Enqueued since: an age (30m, 2h, 7d) or an ISO date/time."
    ),
    limit: int = typer.Option(50, "--limit", min=1, max=500, help="At most this many."),
    as_json: bool = typer.Option(False, "--json", help="Print the messages as JSON."),
) -> None:
    """List recent messages, newest first (TIDINGS_URL, TIDINGS_API_KEY)."""
    params: list[tuple[str, str | int | float | bool | None]] = [("limit", limit)]
    params += [("status", s.upper()) for s in status]
    params += [("tag", t) for t in tag]
    if recipient:
        params.append(("recipient", recipient))
    if since:
        params.append(("enqueued_after", parse_since(since)))
    with client() as http:
        answer = fail_on_error(http.get("/messages", params=params))
    results: list[dict[str, Any]] = answer.get("results", [])
    if as_json:
        print_json(results)
        return
    out = _stdout()
    if not results:
        out.print("no messages")
        return
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("id", no_wrap=True, overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("recipient", overflow="fold")
    table.add_column("enqueued", no_wrap=True)
    table.add_column("sent / delivered")
    table.add_column("error", overflow="fold")
    for message in results:
        reached = ""
        if message.get("delivered"):
            reached = f"delivered {fmt_ms(message['delivered'])}"
        elif message.get("sent"):
            reached = f"sent {fmt_ms(message['sent'])}"
        error = message.get("error") or ""
        if message.get("reason") and error:
            error = f"{message['reason']}: {error}"
        table.add_row(
            escape(str(message.get("id", ""))),
            styled(message.get("status")),
            escape(message.get("recipientEmail") or message.get("recipient") or ""),
            fmt_ms(message.get("enqueued")),
            reached,
            escape(error),
        )
    out.print(table)
    if answer.get("paging", {}).get("more"):
        console.print(f"[dim]showing the newest {len(results)}; raise --limit for more[/dim]")


# -- tidings message ID [--follow] --------------------------------------------------------


def entry_lines(entry: dict[str, Any]) -> list[str]:
    """One history entry as a timeline line (and its hint on a line of its own)."""
    kind = str(entry.get("type", "?"))
    parts: list[str] = []
    request = entry.get("request")
    if isinstance(request, dict) and request.get("url"):
        call = f"{request.get('method', 'POST')} {request['url']}"
        response = entry.get("response")
        status = response.get("status") if isinstance(response, dict) else None
        call += f" → {status if status is not None else 'no answer'}"
        if entry.get("duration_ms") is not None:
            call += f" in {entry['duration_ms']} ms"
        if entry.get("attempt") is not None:
            call = f"attempt {entry['attempt']}: {call}"
        parts.append(call)
    if entry.get("source") and entry.get("event"):
        parts.append(f"{entry['event']} (via {entry['source']})")
    for key, label in (
        ("reference", "id"),
        ("reason", "reason"),
        ("code", "code"),
        ("error_message", "error"),
        ("detail", "detail"),
        ("note", ""),
        ("url", "url"),
        ("retry_at", "retry at"),
        ("subject", "subject"),
    ):
        value = entry.get(key)
        if value not in (None, ""):
            parts.append(f"{label} {value}" if label else str(value))
    # Padded outside the markup, so that the columns line up whatever the colour tags.
    pad = " " * max(1, TYPE_WIDTH - len(kind))
    line = f"{fmt_ms(entry.get('ts'))}  {styled(kind)}{pad} {escape('  '.join(parts))}"
    lines = [line.rstrip()]
    if entry.get("hint"):
        lines.append(f"    [yellow]hint:[/yellow] {escape(str(entry['hint']))}")
    return lines


def summary_lines(details: dict[str, Any]) -> list[str]:
    recipient = details.get("recipientEmail") or details.get("recipient") or ""
    lines = [
        f"[bold]{escape(str(details.get('id')))}[/bold]  {styled(details.get('status'))}"
        f"  to {escape(recipient)}"
    ]
    if details.get("error"):
        reason = f"{details['reason']}: " if details.get("reason") else ""
        lines.append(f"  [red]error:[/red] {escape(reason + str(details['error']))}")
    if details.get("hint"):
        lines.append(f"  [yellow]hint:[/yellow] {escape(str(details['hint']))}")
    return lines


@dataclass
class Timeline:
    """Prints history entries once each, however often the history is read again."""

    out: Console
    seen: set[str] = field(default_factory=set)

    def show(self, entries: Iterable[dict[str, Any]]) -> None:
        for entry in entries:
            key = json.dumps(entry, sort_keys=True, default=str)
            if key in self.seen:
                continue
            self.seen.add(key)
            for line in entry_lines(entry):
                self.out.print(line, highlight=False, soft_wrap=True)


@dataclass
class SSEEvent:
    id: str | None = None
    event: str | None = None
    data: str = ""
    comment: bool = False


def parse_sse(lines: Iterable[str]) -> Iterator[SSEEvent]:
    """Events of a text/event-stream (comment-only blocks come out with ``comment=True``, so
    that a follower can use heartbeats too)."""
    current = SSEEvent()
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r")
        if not line:
            if data or current.event or current.id:
                current.data = "\n".join(data)
                yield current
            elif current.comment:
                yield current
            current, data = SSEEvent(), []
            continue
        if line.startswith(":"):
            current.comment = True
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            current.event = value
        elif name == "id":
            current.id = value


def _history(http: httpx.Client, message_id: str) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = fail_on_error(http.get(f"/messages/{message_id}/history"))[
        "results"
    ]
    return results


def show_message(
    message_id: str = typer.Argument(..., help="The message id (the requestId /send gave)."),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Keep showing new entries live until the message settles."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the message and its history as JSON (not with --follow)."
    ),
) -> None:
    """A message's timeline: every step, request and answer, error and hint."""
    out = _stdout()
    with client() as http:
        details = fail_on_error(http.get(f"/messages/{message_id}"))
        if as_json:
            print_json({"message": details, "history": _history(http, message_id)})
            return
        for line in summary_lines(details):
            out.print(line, highlight=False, soft_wrap=True)
        timeline = Timeline(out)
        timeline.show(_history(http, message_id))
        if not follow:
            return
        try:
            _follow(http, message_id, details, timeline)
        except KeyboardInterrupt:
            console.print("[dim]stopped following[/dim]")
        except httpx.HTTPError as exc:
            console.print(f"[red]the stream broke: {exc}")
            raise typer.Exit(1) from None


def _follow(
    http: httpx.Client, message_id: str, details: dict[str, Any], timeline: Timeline
) -> None:
    status = details.get("status")
    if status in FOLLOW_DONE:
        return
    out = timeline.out
    # Heartbeats come every ~15 s, so a read that waits far longer means a dead connection.
    timeout = httpx.Timeout(30.0, read=90.0)
    with http.stream("GET", f"/messages/{message_id}/stream", timeout=timeout) as response:
        if response.status_code >= 400:
            response.read()
            fail_on_error(response)
        for event in parse_sse(response.iter_lines()):
            # Every event (and heartbeat) is a cue to read the history again: entries that
            # change no status (a retry, a temporary failure) appear without waiting.
            timeline.show(_history(http, message_id))
            if event.comment or not event.data:
                continue
            current = json.loads(event.data)
            if current.get("status") != status:
                status = current.get("status")
                for line in summary_lines(current):
                    out.print(line, highlight=False, soft_wrap=True)
            if status in FOLLOW_DONE:
                return
