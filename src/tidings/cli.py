"""The ``tidings`` command line: thin commands that parse, call and print."""

from __future__ import annotations

import asyncio
import base64
import enum
import mimetypes
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from tidings.commands import messages as messages_commands
from tidings.commands.bulk import bulk as bulk_command
from tidings.commands.doctor import doctor as doctor_command
from tidings.commands.errors import database_errors, fail
from tidings.commands.http import client as _client
from tidings.commands.http import fail_on_error as _fail_on_error
from tidings.commands.http import print_json
from tidings.commands.keys import app as keys_app
from tidings.commands.providers import providers_app
from tidings.commands.suppressions import app as suppressions_app
from tidings.commands.templates import app as templates_app
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
app.add_typer(keys_app, name="keys")
app.add_typer(templates_app, name="templates")
app.command("bulk")(bulk_command)

console = Console(stderr=True)

# A message with one of these statuses will not be delivered: `send --wait` stops there.
FAILED = {"UNDELIVERABLE", "UNROUTABLE", "UNMAPPED", "CANCELED", "FILTERED"}


class Until(enum.StrEnum):
    """What `send --wait` waits for."""

    sent = "sent"
    delivered = "delivered"


# The statuses that count as having got there (later ones included: OPENED is delivered).
REACHED = {
    Until.sent: {"SENT", "DELIVERED", "OPENED", "CLICKED"},
    Until.delivered: {"DELIVERED", "OPENED", "CLICKED"},
}


def bind_listener(host: str, port: int) -> socket.socket:
    """The server's listening socket, bound before anything else is done, so that a port in
    use fails the start before a database or a key is made. uvicorn is handed this socket."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror}")
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    # As uvicorn does: a port held only by old connections in TIME_WAIT is free.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        fail(
            f"cannot listen on {host}:{port}: {reason}. Is another server running there? "
            "Stop it, or choose another port with --port (or TIDINGS_PORT)."
        )
    sock.set_inheritable(True)
    return sock


@app.command()
def serve(
    host: str = typer.Option(None, help="Interface to listen on [env TIDINGS_HOST, 127.0.0.1]."),
    port: int = typer.Option(None, help="Port [env TIDINGS_PORT, 8000]."),
    no_workers: bool = typer.Option(False, "--no-workers", help="Serve the API only."),
    worker_processes: int = typer.Option(
        None,
        "--worker-processes",
        min=0,
        max=16,
        help="Run the workers in this many child processes [env TIDINGS_WORKER_PROCESSES, 0: "
        "in this process].",
    ),
) -> None:
    """Run the API and the workers in one process (SQLite by default), or the workers in
    child processes beside it (--worker-processes)."""
    import uvicorn

    from tidings.app import StartupReport, build_app
    from tidings.config import Settings
    from tidings.logging import configure_logging

    overrides: dict[str, Any] = {}
    if host:
        overrides["host"] = host
    if port:
        overrides["port"] = port
    if worker_processes is not None:
        overrides["worker_processes"] = worker_processes
    settings = Settings(**overrides)
    configure_logging(settings.log_level)
    children = 0 if no_workers else settings.worker_processes
    listener = bind_listener(settings.host, settings.port)
    report = StartupReport(announce=True)
    with database_errors(settings.database_url):
        application = asyncio.run(
            build_app(settings, run_workers=not no_workers and not children, report=report)
        )
    runtime = application.state.runtime
    if children and runtime.sandbox_mode:
        fail(
            "--worker-processes (TIDINGS_WORKER_PROCESSES) cannot be used with the embedded "
            "sandbox: it runs in this process, and only this process's workers can send to "
            "it. Configure Mailgun (MAILGUN_*, or TIDINGS_SANDBOX=false), or leave it at 0."
        )

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
    if not children:
        Server(config).run(sockets=[listener])
        return
    from tidings.commands.worker_processes import WorkerProcesses

    workers = WorkerProcesses(children)

    class ServerWithWorkers(Server):
        async def shutdown(self, sockets: Any = None) -> None:
            await super().shutdown(sockets=sockets)
            # Here, not after run(): uvicorn raises the signal that stopped it again once
            # it has stopped, and that would end this process before its children.
            await asyncio.to_thread(workers.stop)

    runtime.wake_pipes = workers.start()
    try:
        ServerWithWorkers(config).run(sockets=[listener])
    finally:
        workers.stop()


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (it comes with uvicorn[standard], and
    `tidings serve` runs on it through uvicorn): the dispatcher's many small sends and
    database hand-offs cost less on it. None: asyncio's own."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a platform without its wheels (Windows)
        return None
    return uvloop.new_event_loop


@app.command()
def worker(
    wake_fd: int = typer.Option(
        None, "--wake-fd", hidden=True, help="Set by `tidings serve` for its child workers."
    ),
) -> None:
    """Run the workers only (dispatcher), sharing the database with API processes."""
    from tidings.config import Settings
    from tidings.logging import configure_logging
    from tidings.worker import run_worker

    settings = Settings()
    configure_logging(settings.log_level)
    with (
        database_errors(settings.database_url),
        asyncio.Runner(loop_factory=event_loop_factory()) as runner,
    ):
        runner.run(run_worker(settings, wake_fd=wake_fd))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    from tidings.config import Settings
    from tidings.store.database import Database

    url = Settings().database_url

    async def run() -> None:
        db = Database(url)
        try:
            await db.upgrade()
        finally:
            await db.close()

    with database_errors(url):
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
    wait: bool = typer.Option(
        False,
        "--wait",
        help="Follow the message until it is sent or delivered (see --until) or fails; "
        "exit 1 if it fails or the time runs out.",
    ),
    until: Until = typer.Option(
        Until.delivered,
        "--until",
        help="With --wait: stop once the message is SENT (Mailgun took it) or DELIVERED "
        "(the recipient's server took it).",
    ),
    timeout: float = typer.Option(120.0, help="With --wait: give up after this many seconds."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the answer (with --wait: the message at the end) as JSON."
    ),
) -> None:
    """Send one email through a running Tidings server (TIDINGS_URL, TIDINGS_API_KEY)."""
    if bool(to) == bool(user):
        fail("give exactly one of --to EMAIL or --user ID", 2)
    variables: dict[str, str] = {}
    for item in data:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--data expects key=value, got {item!r}", 2)
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
    out = Console(highlight=False, soft_wrap=True)
    with _client() as client:
        answer = _fail_on_error(client.post("/send", json={"message": message}))
        message_id = answer["requestId"]
        if not wait:
            if as_json:
                print_json(answer)
            else:
                out.print(f"requestId  {message_id}")
            return
        target = until.value.upper()
        if not as_json:
            out.print(f"requestId  {message_id}")
            out.print(f"waiting    until {target} (or a failure), at most {timeout:g} s")
        deadline = time.monotonic() + timeout
        last = None
        details: dict[str, Any] = {}
        while time.monotonic() < deadline:
            details = _fail_on_error(client.get(f"/messages/{message_id}"))
            status = details["status"]
            if status != last and not as_json:
                out.print(f"status     {status}")
                last = status
            if status in REACHED[until] or status in FAILED:
                if as_json:
                    print_json(details)
                else:
                    if details.get("error"):
                        out.print(f"error      {details['error']}")
                    if details.get("hint"):
                        out.print(f"hint       {details['hint']}")
                raise typer.Exit(1 if status in FAILED else 0)
            time.sleep(0.5)
        if as_json:
            print_json(details)
        fail(
            f"gave up waiting after {timeout:g} s: the message is {details.get('status')}, not "
            f"{target} (`tidings message {message_id} --follow` keeps watching)"
        )


def main() -> None:
    app(prog_name="tidings")


if __name__ == "__main__":  # pragma: no cover
    main()
