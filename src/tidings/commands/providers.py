"""``tidings providers list|show|add|connect``: Mailgun configurations, through the HTTP API.

Secrets never appear in full: the server answers them masked (last four characters at most),
and a proxy URL's password is hidden here before printing.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tidings.commands.http import client, fail_on_error, print_json

providers_app = typer.Typer(
    help="Mailgun provider configurations: list, show, add, connect.", no_args_is_help=True
)
err = Console(stderr=True, soft_wrap=True)


def _out() -> Console:
    # Made per call (not at import) so the output goes to whatever stdout is at that time.
    return Console(soft_wrap=True)


def hide_password(url: str | None) -> str | None:
    """``http://user:secret@proxy:3128`` → ``http://user:****@proxy:3128``."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:****@{host}"))


def _settings(body: dict[str, Any]) -> dict[str, Any]:
    settings = body.get("settings")
    return settings if isinstance(settings, dict) else {}


@providers_app.command("list")
def list_providers(
    as_json: bool = typer.Option(False, "--json", help="Print the configurations as JSON."),
) -> None:
    """Every provider configuration, the default one marked (secrets masked)."""
    with client() as http:
        body = fail_on_error(http.get("/providers"))
    if as_json:
        print_json(body.get("results", []))
        return
    table = Table(title="Provider configurations")
    for column in ("id", "alias", "domain", "host", "polling", "default", "origin"):
        table.add_column(column, overflow="fold")
    for item in body.get("results", []):
        settings = _settings(item)
        table.add_row(
            item["id"],
            item.get("alias") or "",
            settings.get("domain", ""),
            settings.get("host", ""),
            settings.get("polling", "on"),
            "yes" if item.get("default") else "",
            item.get("origin", ""),
        )
    _out().print(table)


def _print_provider(body: dict[str, Any]) -> None:
    out = _out()
    settings = _settings(body)
    rows = [
        ("id", body["id"]),
        ("alias", body.get("alias") or "-"),
        ("title", body.get("title") or "-"),
        ("provider", body.get("provider", "mailgun")),
        ("default", "yes" if body.get("default") else "no"),
        ("origin", body.get("origin", "")),
        ("domain", settings.get("domain", "")),
        ("host", settings.get("host", "")),
        ("from", settings.get("from_address") or "-"),
        ("api key", settings.get("api_key") or "not set"),
        ("signing key", settings.get("webhook_signing_key") or "not set (webhooks refused)"),
        ("polling", settings.get("polling", "on")),
        ("proxy", hide_password(settings.get("proxy_url")) or "none (direct)"),
    ]
    for name, value in rows:
        out.print(f"[bold]{name:>12}[/bold]  {escape(str(value))}")
    out.print(f"[bold]{'webhook URL':>12}[/bold]  {escape(str(body.get('webhook_url', '')))}")
    out.print(
        "\nMailgun posts delivery events to the webhook URL. Register it with "
        f"`tidings providers connect {body['id']}`, or paste it in Mailgun under Sending → "
        "Webhooks (Delivered Messages, Permanent Failure, …).",
        style="dim",
    )


@providers_app.command("show")
def show(provider_id: str = typer.Argument(..., help="Configuration id or alias.")) -> None:
    """One configuration: settings (secrets masked) and its webhook URL."""
    with client() as http:
        body = fail_on_error(http.get(f"/providers/{provider_id}"))
    _print_provider(body)


@providers_app.command("add")
def add(
    domain: str = typer.Option(..., "--domain", help="Sending domain, e.g. mg.example.com."),
    api_key: str = typer.Option(
        ..., "--api-key", prompt="Mailgun API key", hide_input=True, help="Mailgun API key."
    ),
    host: str | None = typer.Option(
        None, "--host", help="api.mailgun.net (US, default), api.eu.mailgun.net, or a URL."
    ),
    from_address: str | None = typer.Option(None, "--from", help="Default From address."),
    signing_key: str | None = typer.Option(
        None, "--signing-key", help="Mailgun's HTTP webhook signing key."
    ),
    polling: str | None = typer.Option(None, "--polling", help="on, off or auto."),
    proxy_url: str | None = typer.Option(
        None, "--proxy-url", help="Egress proxy for every call to Mailgun."
    ),
    alias: str | None = typer.Option(None, "--alias", help="A name to use instead of the id."),
    title: str | None = typer.Option(None, "--title", help="A description."),
) -> None:
    """Add a Mailgun configuration (the API key is prompted for, hidden, when not given)."""
    if polling is not None and polling not in ("on", "off", "auto"):
        err.print("[red]--polling must be on, off or auto")
        raise typer.Exit(2)
    settings: dict[str, Any] = {"domain": domain, "api_key": api_key}
    optional = {
        "host": host,
        "from_address": from_address,
        "webhook_signing_key": signing_key,
        "polling": polling,
        "proxy_url": proxy_url,
    }
    settings.update({name: value for name, value in optional.items() if value is not None})
    request: dict[str, Any] = {"provider": "mailgun", "settings": settings}
    if alias:
        request["alias"] = alias
    if title:
        request["title"] = title
    with client() as http:
        body = fail_on_error(http.post("/providers", json=request))
    err.print(f"[green]added {body['id']}")
    _print_provider(body)


_ACTIONS = {
    "created": "[green]registered[/green]",
    "added": "[green]added[/green] (other URLs kept)",
    "already": "already registered",
    "full": "[red]not registered: 3 URLs already[/red]",
}


@providers_app.command("connect")
def connect(provider_id: str = typer.Argument(..., help="Configuration id or alias.")) -> None:
    """Register this configuration's webhook URL at Mailgun for every event kind.

    Checks the domain exists in the configured region first. Safe to run again."""
    with client(timeout=120) as http:
        body = fail_on_error(http.post(f"/providers/{provider_id}/connect"))
    out = _out()
    out.print(
        f"Mailgun {escape(body['host'])}, domain {escape(body['domain'])} "
        f"(state: {escape(str(body.get('domain_state') or 'unknown'))}), {escape(body['route'])}"
    )
    out.print(f"webhook URL: {escape(body['url'])}")
    for item in body["webhooks"]:
        out.print(f"  {item['kind']:<15} {_ACTIONS.get(item['action'], item['action'])}")
    registered, already = body.get("registered", []), body.get("already", [])
    out.print(f"{len(registered)} registered, {len(already)} already there")
    imported = body.get("suppressions")
    if imported is not None and imported.get("imported"):
        out.print(
            f"suppressions: {imported['read']} on Mailgun's lists, "
            f"{imported['added']} added to Tidings' suppression list"
        )
    elif imported is not None:
        err.print(f"[red]suppressions not imported: {escape(str(imported.get('error')))}")
    if not body.get("complete", True):
        err.print(
            "[red]Some kinds have Mailgun's maximum of 3 URLs: remove one in Mailgun → "
            f"Sending → Webhooks, then run connect again: {', '.join(body.get('full', []))}"
        )
        raise typer.Exit(1)
