"""``tidings bulk FILE``: send one message to every user of a CSV or JSON Lines file, as a
Courier bulk job on a running Tidings server (TIDINGS_URL, TIDINGS_API_KEY).

The file is read and checked whole before anything is sent. CSV: a header row; ``email``
and ``user_id`` name the user (one of them on every row), ``profile.X`` columns are profile
fields (``{{profile.X}}``), ``data.X`` and every other column are data (``{{data.X}}``);
empty cells are left out. JSON Lines: one Courier bulk user per line
(``{"profile": {"email": …}, "data": {…}, "to": {…}}``). The command creates the job, adds
the users in chunks, runs it and follows it with progress bars through acceptance, sending
and delivery, then prints a summary table. A user the server refuses is reported by its
line in the file.
"""

from __future__ import annotations

import csv
import json
import re
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tidings.commands.errors import USAGE, answer_error, fail
from tidings.commands.http import client, fail_on_error, print_json
from tidings.commands.templates import parse_pairs

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

# Users per add_users call: well inside the server's limit per call and body size.
DEFAULT_CHUNK = 1000
MAX_CHUNK = 5000

SENT = {"SENT", "DELIVERED", "OPENED", "CLICKED"}
DELIVERED = {"DELIVERED", "OPENED", "CLICKED"}
FAILED = {"UNDELIVERABLE", "UNROUTABLE", "UNMAPPED", "CANCELED", "FILTERED"}
_USER_INDEX = re.compile(r"users\[(\d+)\]")


class Until(StrEnum):
    """How far the command follows the job."""

    accepted = "accepted"
    sent = "sent"
    delivered = "delivered"


@dataclass
class Users:
    users: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # each user's line in the file


def _bad(path: Path, line: int, why: str) -> NoReturn:
    fail(f"{path}:{line}: {why}", USAGE)


def read_csv(path: Path, text: str) -> Users:
    read = Users()
    reader = csv.DictReader(text.splitlines())
    columns = reader.fieldnames or []
    if not columns:
        fail(f"{path}: the file is empty; give a header row (email, user_id, …)", USAGE)
    if "email" not in columns and "user_id" not in columns:
        fail(f"{path}:1: the header needs an email or a user_id column", USAGE)
    if len(set(columns)) != len(columns):
        fail(f"{path}:1: a column appears twice in the header", USAGE)
    try:
        for row in reader:
            line = reader.line_num
            if None in row:
                _bad(path, line, f"more cells than the header has columns ({len(columns)})")
            user: dict[str, Any] = {}
            profile: dict[str, Any] = {}
            data: dict[str, Any] = {}
            for column, value in row.items():
                if value is None or value == "":
                    continue
                if column == "email":
                    profile["email"] = value.strip()
                elif column == "user_id":
                    user["to"] = {"user_id": value.strip()}
                elif column.startswith("profile."):
                    profile[column.removeprefix("profile.")] = value
                else:
                    data[column.removeprefix("data.")] = value
            if not profile.get("email") and "to" not in user:
                _bad(path, line, "the row has neither an email nor a user_id")
            if profile:
                user["profile"] = profile
            if data:
                user["data"] = data
            read.users.append(user)
            read.lines.append(line)
    except csv.Error as exc:
        _bad(path, reader.line_num, f"not valid CSV ({exc})")
    return read


def read_jsonl(path: Path, text: str) -> Users:
    read = Users()
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            user = json.loads(raw)
        except ValueError as exc:
            _bad(path, number, f"not valid JSON ({exc.args[0] if exc.args else exc})")
        if not isinstance(user, dict):
            _bad(path, number, "each line must be one user, a JSON object")
        read.users.append(user)
        read.lines.append(number)
    return read


def read_users(path: Path) -> Users:
    """The users of ``path`` (.csv, .jsonl or .ndjson), or exit 2 naming the bad line."""
    kind = path.suffix.lower()
    if kind not in (".csv", ".jsonl", ".ndjson"):
        fail(f"{path}: give a .csv or a .jsonl file", USAGE)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        fail(f"{path}: no such file", USAGE)
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        fail(f"{path}:{line}: not UTF-8 text", USAGE)
    except OSError as exc:
        fail(f"{path}: cannot read it ({exc.strerror})", USAGE)
    read = read_csv(path, text) if kind == ".csv" else read_jsonl(path, text)
    if not read.users:
        fail(f"{path}: no users in the file", USAGE)
    return read


def _refused_user(response: httpx.Response, path: Path, users: Users, offset: int) -> None:
    """A 400 naming ``users[i]`` of a chunk, said as the line of the file it came from."""
    if response.status_code != 400:
        return
    try:
        message = str(response.json().get("message") or "")
    except ValueError:
        return
    found = _USER_INDEX.search(message)
    if found is None:
        return
    index = offset + int(found.group(1))
    if index < len(users.lines):
        text = _USER_INDEX.sub("user", message, count=1)
        fail(f"{path}:{users.lines[index]}: the server refused this user: {text}")


def _statuses(job: dict[str, Any]) -> dict[str, int]:
    statuses = job.get("statuses")
    return {str(k): int(v) for k, v in statuses.items()} if isinstance(statuses, dict) else {}


def _count(statuses: dict[str, int], wanted: set[str]) -> int:
    return sum(n for status, n in statuses.items() if status in wanted)


def _done(job: dict[str, Any], until: Until) -> bool:
    if job["status"] not in ("COMPLETED", "ERROR"):
        return False
    if until is Until.accepted:
        return True
    statuses = _statuses(job)
    total = sum(statuses.values())
    reached = _count(statuses, SENT if until is Until.sent else DELIVERED)
    return reached + _count(statuses, FAILED) >= total


def bulk(
    file: Path = typer.Argument(..., help="Users: a .csv (header row) or .jsonl file."),
    template: str | None = typer.Option(
        None, "--template", help="Send this stored template (id or alias)."
    ),
    title: str | None = typer.Option(None, "--title", help="Subject of inline content."),
    body: str | None = typer.Option(None, "--body", help="Body of inline content."),
    event: str | None = typer.Option(None, "--event", help="The job's event name."),
    data: list[str] = typer.Option([], "--data", "-d", help="Data for every user, key=value."),
    brand: str | None = typer.Option(None, "--brand", help="Brand the emails with this brand."),
    chunk: int = typer.Option(
        DEFAULT_CHUNK, "--chunk", min=1, max=MAX_CHUNK, help="Users per add_users call."
    ),
    until: Until = typer.Option(
        Until.delivered,
        "--until",
        help="Follow the job until every user's message is accepted, sent or delivered.",
    ),
    timeout: float = typer.Option(600.0, help="Give up following after this many seconds."),
    as_json: bool = typer.Option(False, "--json", help="Print the job at the end as JSON."),
) -> None:
    """Send to every user of a CSV or JSONL file as one bulk job, and follow it."""
    if template and (title or body):
        fail("give --template, or --title and --body, not both", USAGE)
    if not template and not (title and body):
        fail("give --template ID, or --title and --body", USAGE)
    message: dict[str, Any] = {"event": event or template or "tidings-bulk"}
    if template:
        message["template"] = template
    else:
        message["content"] = {"title": title, "body": body}
    if data:
        message["data"] = parse_pairs(data, "--data")
    if brand:
        message["brand"] = brand
    users = read_users(file)
    total = len(users.users)
    calls = 0
    started = time.monotonic()
    marks: dict[str, float] = {}
    with client() as http:
        job_id = fail_on_error(http.post("/bulk", json={"message": message}))["jobId"]
        calls += 1
        progress = Progress(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=False,
        )
        progress.start()
        try:
            adding = progress.add_task("added", total=total)
            for offset in range(0, total, chunk):
                part = users.users[offset : offset + chunk]
                response = http.post(f"/bulk/{job_id}", json={"users": part})
                calls += 1
                if response.status_code >= 400:
                    _refused_user(response, file, users, offset)
                    answer_error(response)
                progress.advance(adding, len(part))
            marks["added"] = time.monotonic()
            response = http.post(f"/bulk/{job_id}/run")
            calls += 1
            if response.status_code >= 400:
                answer_error(response)
            accepted = progress.add_task("accepted", total=total)
            sent = progress.add_task("sent", total=total, visible=until is not Until.accepted)
            delivered = progress.add_task(
                "delivered", total=total, visible=until is Until.delivered
            )
            failed = progress.add_task("failed", total=total)
            deadline = time.monotonic() + timeout
            while True:
                job = fail_on_error(http.get(f"/bulk/{job_id}"))["job"]
                calls += 1
                statuses = _statuses(job)
                progress.update(accepted, completed=job["enqueued"])
                progress.update(sent, completed=_count(statuses, SENT))
                progress.update(delivered, completed=_count(statuses, DELIVERED))
                progress.update(failed, completed=job["failures"])
                now = time.monotonic()
                if job["status"] in ("COMPLETED", "ERROR"):
                    marks.setdefault("accepted", now)
                if statuses and _count(statuses, SENT) + _count(statuses, FAILED) >= total:
                    marks.setdefault("sent", now)
                if statuses and _count(statuses, DELIVERED) + _count(statuses, FAILED) >= total:
                    marks.setdefault("delivered", now)
                if _done(job, until) or now > deadline:
                    break
                time.sleep(0.5)
        except BaseException:
            # The error line (said on the way out) is the whole output: no progress frame.
            progress.live.transient = True
            raise
        finally:
            progress.stop()
    if as_json:
        print_json({"jobId": job_id, **job})
    else:
        _summary(job_id, job, calls, started, marks)
    if job["status"] == "ERROR":
        fail(f"bulk job {job_id} failed: {job.get('error') or 'see the server log'}")
    if not _done(job, until):
        fail(
            f"gave up following after {timeout:g} s: {job['enqueued']} of {total} accepted, "
            f"{_count(_statuses(job), SENT)} sent (`tidings messages` shows them)"
        )


def _summary(
    job_id: str, job: dict[str, Any], calls: int, started: float, marks: dict[str, float]
) -> None:
    table = Table(title="messages by status")
    table.add_column("status")
    table.add_column("messages", justify="right")
    for status, n in sorted(_statuses(job).items(), key=lambda item: -item[1]):
        table.add_row(status, str(n))
    out.print(table)
    facts = Table(show_header=False, box=None)
    facts.add_column()
    facts.add_column(justify="right")
    facts.add_row("bulk job", job_id)
    facts.add_row("users received", str(job["received"]))
    facts.add_row("messages enqueued", str(job["enqueued"]))
    facts.add_row("failures", str(job["failures"]))
    facts.add_row("request id", str(job.get("requestId") or ""))
    facts.add_row("API calls", str(calls))
    for mark in ("added", "accepted", "sent", "delivered"):
        if mark in marks:
            facts.add_row(f"all {mark} after", f"{marks[mark] - started:.1f} s")
    out.print(facts)
