"""``tidings suppressions list|show|delete``: the suppression list, through the HTTP API."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.table import Table

from tidings.commands.http import client, fail_on_error, print_json

app = typer.Typer(
    help="Addresses Tidings will not send to (hard bounces, complaints, unsubscribes).",
    no_args_is_help=True,
)
out = Console()


def _when(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


@app.command("list")
def list_suppressions(
    limit: int = typer.Option(100, help="At most this many."),
    as_json: bool = typer.Option(False, "--json", help="Print the addresses as JSON."),
) -> None:
    """List suppressed addresses."""
    with client() as http:
        body = fail_on_error(http.get("/suppressions", params={"limit": limit}))
    if as_json:
        print_json(body["results"])
        return
    table = Table()
    table.add_column("address", no_wrap=True)
    table.add_column("reason", no_wrap=True)
    table.add_column("code")
    table.add_column("since")
    table.add_column("message")
    table.add_column("detail", overflow="fold")
    for item in body["results"]:
        table.add_row(
            item["address"],
            item["reason"],
            str(item.get("code") or ""),
            _when(item.get("created")),
            item.get("messageId") or "",
            item.get("detail") or "",
        )
    out.print(table)
    if body["paging"]["more"]:
        out.print(f"(more: use --limit above {limit})")


@app.command("show")
def show_suppression(address: str) -> None:
    """Why one address is suppressed."""
    with client() as http:
        item = fail_on_error(http.get(f"/suppressions/{address}"))
    for key in ("address", "reason", "code", "detail", "messageId"):
        out.print(f"{key:10} {item.get(key) or ''}")
    out.print(f"{'since':10} {_when(item.get('created'))}")


@app.command("delete")
def delete_suppression(address: str) -> None:
    """Allow sending to an address again."""
    with client() as http:
        response = http.delete(f"/suppressions/{address}")
        if response.status_code != 204:
            fail_on_error(response)
    out.print(f"{address} removed from the suppression list")
