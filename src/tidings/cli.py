"""The ``tidings`` command line: thin commands that parse, call and print."""

from __future__ import annotations

import typer

from tidings.sandbox.command import sandbox as sandbox_command

app = typer.Typer(
    name="tidings",
    help="Tidings: Courier-compatible notification delivery through Mailgun.",
    no_args_is_help=True,
    add_completion=False,
)
app.command("sandbox", help="Run the local Mailgun-compatible sandbox.")(sandbox_command)


def main() -> None:
    app()
