"""``tidings templates list|render``: stored templates, through the HTTP API.

``render ID --data k=v --user U`` renders a template version for a user without sending
(``POST /tidings/templates/{id}/render``) and prints the subject and text part, or the HTML
with ``--html``; values given with ``--data`` are JSON when they parse as JSON
(``--data items='[{"name": "Mouse"}]'``), strings otherwise.
"""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from tidings.commands.http import client, fail_on_error, print_json

app = typer.Typer(help="Stored templates (Courier's notifications).", no_args_is_help=True)
out = Console()


def parse_pairs(pairs: list[str], option: str) -> dict[str, Any]:
    """``["a=1", "b=x"]`` as ``{"a": 1, "b": "x"}``; a bad pair is a usage error."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not key=value", param_hint=option)
        try:
            values[key] = json.loads(raw)
        except ValueError:
            values[key] = raw
    return values


@app.command("list")
def list_templates(
    as_json: bool = typer.Option(False, "--json", help="Print the templates as JSON."),
) -> None:
    """List templates: id, name, state, alias."""
    with client() as http:
        body = fail_on_error(http.get("/notifications"))
    if as_json:
        print_json(body["results"])
        return
    table = Table()
    for column in ("id", "name", "state", "tags"):
        table.add_column(column, no_wrap=column == "id")
    for item in body["results"]:
        table.add_row(
            item["id"],
            item.get("name") or "",
            item.get("state") or "",
            ", ".join(item.get("tags") or []),
        )
    out.print(table)


@app.command("render")
def render_template(
    template_id: str = typer.Argument(..., help="The template's id."),
    data: list[str] = typer.Option([], "--data", "-d", help="A data value, key=value."),
    user: str | None = typer.Option(None, "--user", "-u", help="Render for this user's profile."),
    profile: list[str] = typer.Option([], "--profile", help="A profile field, key=value."),
    locale: str | None = typer.Option(None, help="Render this locale's content."),
    version: str = typer.Option("published", help='"published", "draft" or a version (v001).'),
    brand: str | None = typer.Option(None, help="Render with this brand."),
    html: bool = typer.Option(False, "--html", help="Print the HTML part instead of the text."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole answer as JSON."),
) -> None:
    """Render a template version for a user, without sending anything."""
    body: dict[str, Any] = {
        "version": version,
        "data": parse_pairs(data, "--data"),
        "profile": parse_pairs(profile, "--profile"),
    }
    if user is not None:
        body["user_id"] = user
    if locale is not None:
        body["locale"] = locale
    if brand is not None:
        body["brand_id"] = brand
    with client() as http:
        answer = fail_on_error(http.post(f"/tidings/templates/{template_id}/render", json=body))
    if as_json:
        print_json(answer)
        return
    if html:
        print(answer["html"])
        return
    out.print(
        f"[bold]{answer['subject']}[/bold]  ({answer['template']} {answer['version']}, "
        f"locale {answer['locale']}, brand {answer['brand'] or 'none'})",
        highlight=False,
    )
    out.print(answer["text"], highlight=False, markup=False)
