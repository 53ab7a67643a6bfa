"""``tidings doctor [PROVIDER_ID]``: print the server's doctor checks, each with its fix.

It asks the running server (``GET /providers/{id}/doctor``) rather than checking from the
machine the command runs on: the server is what calls Mailgun (through its proxy, with its
DNS and its public URL), so only its view answers "will this work". Without an id, every
configuration is checked. Exits 1 when any check fails.
"""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from tidings.commands.http import client, fail_on_error

_MARKS = {
    "ok": "[green]✔ ok  [/green]",
    "warn": "[yellow]! warn[/yellow]",
    "fail": "[red]✘ fail[/red]",
}


def _print_report(out: Console, report: dict[str, Any]) -> None:
    out.print(
        f"\n[bold]{escape(report['provider_id'])}[/bold]  {escape(report['domain'])} at "
        f"{escape(report['host'])}, {escape(report['route'])}, polling {report['polling']}"
    )
    for check in report["checks"]:
        mark = _MARKS.get(check["status"], check["status"])
        out.print(f"  {mark}  [bold]{check['name']}[/bold]: {escape(check['detail'])}")
        if check.get("fix") and check["status"] != "ok":
            out.print(f"          [cyan]fix:[/cyan] {escape(check['fix'])}")


def doctor(
    provider_id: str | None = typer.Argument(
        None, help="Configuration id or alias; all of them when left out."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON."),
) -> None:
    """Check Mailgun configurations and print each check with its fix.

    Key and region, the domain's DNS (MX, SPF, DKIM), webhooks registered and arriving,
    polling, and the network route (direct or proxy)."""
    with client(timeout=120) as http:
        if provider_id is None:
            listed = fail_on_error(http.get("/providers"))
            ids = [item["id"] for item in listed.get("results", [])]
        else:
            ids = [provider_id]
        reports = [fail_on_error(http.get(f"/providers/{pid}/doctor")) for pid in ids]
    out = Console(soft_wrap=True)
    if as_json:
        out.print_json(json.dumps(reports))
    else:
        if not reports:
            out.print("no provider configurations: add one with `tidings providers add`")
        for report in reports:
            _print_report(out, report)
    if any(report["status"] == "fail" for report in reports):
        raise typer.Exit(1)
