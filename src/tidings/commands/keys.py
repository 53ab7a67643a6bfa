"""``tidings keys create|list|revoke``: the API keys, straight in the database.

No server is needed (and a running one sees the change at once): these commands open
TIDINGS_DATABASE_URL themselves, so a lost first key is never a dead end. A new key is
printed once, alone on stdout (``export TIDINGS_API_KEY=$(tidings keys create)`` works);
only its hash is stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tidings.commands.errors import database_errors, fail, note, warn
from tidings.commands.http import print_json
from tidings.store import api_keys, ui_sessions
from tidings.store.api_keys import StoredKey
from tidings.store.database import Database

app = typer.Typer(
    help="API keys: create, list, revoke (in the database; no server needed).",
    no_args_is_help=True,
)

T = TypeVar("T")


def _database_url() -> str:
    from tidings.config import Settings

    return Settings().database_url


def _run(work: Callable[[Database], Awaitable[T]]) -> T:
    """Open (and migrate) the database, run ``work``, close it; failures as one line."""
    url = _database_url()

    async def run() -> T:
        db = Database(url)
        try:
            await db.upgrade()
            return await work(db)
        finally:
            await db.close()

    with database_errors(url):
        return asyncio.run(run())


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") + " UTC" if moment else "never"


def _as_json(key: StoredKey) -> dict[str, object]:
    return {
        "id": key.id,
        "name": key.name,
        "key": key.hint,
        "created": key.created_at.isoformat(),
        "last_used": key.last_used_at.isoformat() if key.last_used_at else None,
    }


@app.command("create")
def create(
    name: str | None = typer.Option(None, "--name", help="A label, e.g. who or what uses it."),
) -> None:
    """Make a new API key and print it (shown this once; only its hash is stored)."""
    if name is not None and not 0 < len(name) <= 100:
        fail("--name must be 1 to 100 characters", 2)
    key = api_keys.generate()

    async def work(db: Database) -> StoredKey:
        async with db.write() as conn:
            return await api_keys.add(conn, key, name=name)

    stored = _run(work)
    label = f" ({stored.name})" if stored.name else ""
    note(f"created key {stored.id}{label}; it is shown this once, only its hash is stored:")
    typer.echo(key)


@app.command("list")
def list_keys(
    as_json: bool = typer.Option(False, "--json", help="Print the keys as JSON."),
) -> None:
    """The stored keys: id, name, last four characters, created, last used."""

    async def work(db: Database) -> list[StoredKey]:
        async with db.read() as conn:
            return await api_keys.list_all(conn)

    keys = _run(work)
    if as_json:
        print_json([_as_json(key) for key in keys])
        return
    out = Console(soft_wrap=True)
    if not keys:
        out.print("no stored keys (`tidings keys create` makes one)")
        return
    table = Table(show_edge=False, pad_edge=False)
    for column in ("id", "name", "key", "created", "last used"):
        table.add_column(column, no_wrap=column != "name")
    for key in keys:
        table.add_row(
            str(key.id),
            escape(key.name or ""),
            key.hint,
            _when(key.created_at),
            _when(key.last_used_at),
        )
    out.print(table)


@app.command("revoke")
def revoke(
    ref: str = typer.Argument(
        ..., metavar="KEY", help="The key's id, its last four characters (tk_…abcd), or name."
    ),
) -> None:
    """Revoke a key: it stops opening the API at once (running servers included)."""

    async def work(db: Database) -> tuple[list[StoredKey], int, int]:
        async with db.write() as conn:
            found = await api_keys.find(conn, ref)
            ended = 0
            if len(found) == 1:
                await api_keys.delete(conn, found[0].id)
                # A UI session does not say which key opened it: a revoked key may have been
                # leaked and used to log in, so every session ends with it.
                ended = await ui_sessions.revoke_all(conn)
            return found, await api_keys.count(conn), ended

    found, left, ended = _run(work)
    if not found:
        fail(f"no key matches {ref!r}: `tidings keys list` shows them")
    if len(found) > 1:
        ids = ", ".join(f"{k.id} ({k.name or k.hint})" for k in found)
        fail(f"{ref!r} matches {len(found)} keys ({ids}): give the id")
    key = found[0]
    label = f" ({key.name})" if key.name else ""
    typer.echo(f"revoked key {key.id}{label}, {key.hint}")
    if ended:
        note(f"ended {ended} web UI session(s): log in again with a key that is still valid")
    if left == 0:
        warn(
            "no stored key is left: unless TIDINGS_API_KEY is set, the API accepts no key "
            "until you run `tidings keys create`"
        )
