"""The ``tidings`` command line: thin commands that parse, call and print."""

from __future__ import annotations

import asyncio
import base64
import mimetypes
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from tidings.commands import messages as messages_commands
from tidings.commands.doctor import doctor as doctor_command
from tidings.commands.http import client as _client
from tidings.commands.http import fail_on_error as _fail_on_error
from tidings.commands.providers import providers_app
from tidings.commands.suppressions import app as suppressions_app
from tidings.sandbox.command import sandbox as sandbox_command

app = typer.Typer(
    name="tidings",
    help="Tidings: Courier-compatible notification delivery through Mailgun.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.command("sandbox", help="Run the local Mailgun-compatible sandbox.")(sandbox_command)
app.command("messages")(messages_commands.list_messages)
app.command("message")(messages_commands.show_message)
app.add_typer(providers_app, name="providers")
app.command("doctor")(doctor_command)
app.add_typer(suppressions_app, name="suppressions")

console = Console(stderr=True)
out = Console()

FINAL = {"SENT", "DELIVERED", "OPENED", "CLICKED", "UNDELIVERABLE", "UNROUTABLE", "CANCELED"}


@app.command()
def serve(
    host: str = typer.Option(None, help="Interface to listen on [env TIDINGS_HOST, 127.0.0.1]."),
    port: int = typer.Option(None, help="Port [env TIDINGS_PORT, 8000]."),
    no_workers: bool = typer.Option(False, "--no-workers", help="Serve the API only."),
) -> None:
    """Run the API and the workers in one process (SQLite by default)."""
    import uvicorn

    from tidings.app import StartupReport, build_app
    from tidings.config import Settings
    from tidings.logging import configure_logging

    overrides: dict[str, Any] = {}
    if host:
        overrides["host"] = host
    if port:
        overrides["port"] = port
    settings = Settings(**overrides)
    configure_logging(settings.log_level)
    report = StartupReport(announce=True)
    application = asyncio.run(build_app(settings, run_workers=not no_workers, report=report))
    runtime = application.state.runtime

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            # uvicorn waits for open responses before the app's shutdown: end the streams.
            runtime.closing.set()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        application,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        # uvicorn's own handlers would print its records (tracebacks included) unmasked:
        # without them they reach the root handler, which masks secrets.
        log_config=None,
        timeout_graceful_shutdown=30,
    )
    Server(config).run()


@app.command()
def worker() -> None:
    """Run the workers only (dispatcher), sharing the database with API processes."""
    from tidings.config import Settings
    from tidings.logging import configure_logging
    from tidings.worker import run_worker

    settings = Settings()
    configure_logging(settings.log_level)
    asyncio.run(run_worker(settings))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    from tidings.config import Settings
    from tidings.store.database import Database

    async def run() -> None:
        db = Database(Settings().database_url)
        try:
            await db.upgrade()
        finally:
            await db.close()

    asyncio.run(run())
    console.print("[green]database is up to date[/green]")


@app.command()
def send(
    to: str = typer.Option(None, "--to", help="Recipient email address."),
    user: str = typer.Option(None, "--user", help="Recipient user id (its profile's email)."),
    title: str = typer.Option(..., "--title", help="Subject."),
    body: str = typer.Option(..., "--body", help="Body text; {{variables}} allowed."),
    data: list[str] = typer.Option([], "--data", help="Template variable, key=value."),
    attach: list[Path] = typer.Option([], "--attach", help="File to attach.", exists=True),
    tag: list[str] = typer.Option([], "--tag", help="Tag (at most 3)."),
    wait: bool = typer.Option(False, "--wait", help="Follow the message to SENT or a failure."),
    timeout: float = typer.Option(120.0, help="With --wait: give up after this many seconds."),
) -> None:
    """Send one email through a running Tidings server (TIDINGS_URL, TIDINGS_API_KEY)."""
    if bool(to) == bool(user):
        console.print("[red]Give exactly one of --to EMAIL or --user ID.")
        raise typer.Exit(2)
    variables: dict[str, str] = {}
    for item in data:
        key, sep, value = item.partition("=")
        if not sep or not key:
            console.print(f"[red]--data expects key=value, got {item!r}")
            raise typer.Exit(2)
        variables[key] = value
    message: dict[str, Any] = {
        "to": {"email": to} if to else {"user_id": user},
        "content": {"title": title, "body": body},
        "data": variables,
    }
    if tag:
        message["metadata"] = {"tags": tag}
    if attach:
        message["providers"] = {
            "mailgun": {
                "override": {
                    "attachment": [
                        {
                            "filename": path.name,
                            "contentType": mimetypes.guess_type(path.name)[0]
                            or "application/octet-stream",
                            "data": base64.b64encode(path.read_bytes()).decode(),
                        }
                        for path in attach
                    ]
                }
            }
        }
    with _client() as client:
        answer = _fail_on_error(client.post("/send", json={"message": message}))
        message_id = answer["requestId"]
        out.print(message_id)
        if not wait:
            return
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            details = _fail_on_error(client.get(f"/messages/{message_id}"))
            status = details["status"]
            if status != last:
                console.print(
                    f"{status}" + (f": {details['error']}" if details.get("error") else "")
                )
                last = status
            if status in FINAL:
                if details.get("hint"):
                    console.print(f"[yellow]hint:[/yellow] {details['hint']}")
                raise typer.Exit(0 if status not in {"UNDELIVERABLE", "UNROUTABLE"} else 1)
            time.sleep(0.5)
        console.print("[red]still not sent: giving up waiting")
        raise typer.Exit(1)


def main() -> None:
    app(prog_name="tidings")


if __name__ == "__main__":  # pragma: no cover
    main()
