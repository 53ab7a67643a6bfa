"""Every command that talks to a server says what went wrong in one line and exits 1, never
a traceback: the server down, a server that never answers, one that answers 4xx or 5xx,
and one that is not Tidings at all."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from typer.testing import CliRunner

from tests.support.servers import free_port, serve_asgi
from tidings.cli import app

TIDINGS = [sys.executable, "-m", "tidings.cli"]
USERS_CSV = str(Path(__file__).parent.parent / "fixtures" / "bulk" / "users.csv")

# One call of every command that talks to a running server.
SERVER_COMMANDS = {
    "send": ["send", "--to", "ann@example.test", "--title", "t", "--body", "b", "--wait"],
    "messages": ["messages"],
    "message": ["message", "01abc"],
    "providers list": ["providers", "list"],
    "providers show": ["providers", "show", "main"],
    "providers add": ["providers", "add", "--domain", "mg.x.test", "--api-key", "key-1234"],
    "providers connect": ["providers", "connect", "main"],
    "doctor": ["doctor"],
    "suppressions list": ["suppressions", "list"],
    "suppressions show": ["suppressions", "show", "ann@example.test"],
    "suppressions delete": ["suppressions", "delete", "ann@example.test"],
    "templates list": ["templates", "list"],
    "templates render": ["templates", "render", "nt_1", "--data", "a=1"],
    "bulk": ["bulk", USERS_CSV, "--title", "t", "--body", "b"],
}
# The commands that work on the database or run a server themselves.
LOCAL_COMMANDS = {
    "serve",
    "worker",
    "sandbox",
    "db upgrade",
    "keys create",
    "keys list",
    "keys revoke",
}


def _leaves(group: Any, prefix: str = "") -> Iterator[str]:
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group (typer ships its own click)
            yield from _leaves(command, f"{prefix}{name} ")
        else:
            yield prefix + name


def test_every_command_is_covered() -> None:
    assert set(_leaves(typer.main.get_command(app))) == set(SERVER_COMMANDS) | LOCAL_COMMANDS


ENV = {"TIDINGS_API_KEY": "tk_test_key", "TIDINGS_CLIENT_TIMEOUT_S": "1"}


def _check_all(url: str, expected: str) -> None:
    """Each command, run in this process (a process each would take minutes here): the
    exit code, and one line on stderr; an exception escaping the command fails the test."""
    runner = CliRunner()
    for name, args in SERVER_COMMANDS.items():
        result = runner.invoke(app, args, env={**ENV, "TIDINGS_URL": url})
        assert isinstance(result.exception, SystemExit | None), (name, result.exception)
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 1, (name, result.output)
        assert len(lines) == 1, (name, result.stderr)
        assert lines[0].startswith("error: ") and expected in lines[0], (name, lines[0])


def test_a_real_process_prints_one_line_not_a_traceback() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIDINGS_", "MAILGUN_"))}
    env.update(ENV, TIDINGS_URL=f"http://127.0.0.1:{free_port()}")
    result = subprocess.run(
        [*TIDINGS, *SERVER_COMMANDS["send"]], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: cannot reach the Tidings server at http://127.0.0.1:")
    assert result.stderr.count("\n") == 1


def test_server_down() -> None:
    _check_all(f"http://127.0.0.1:{free_port()}", "cannot reach the Tidings server at")


def test_server_that_never_answers() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)  # connections are taken by the kernel, and never answered
        port = listener.getsockname()[1]
        _check_all(f"http://127.0.0.1:{port}", "did not answer within 1 s")


def _answering(response: Response) -> Starlette:
    async def endpoint(request: Request) -> Response:
        return response

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(routes=[Route("/{path:path}", endpoint, methods=methods)])


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (
            JSONResponse({"message": "the database\nis down", "type": "api_error"}, 500),
            "500 Internal Server Error: the database is down (the server's log says more)",
        ),
        (PlainTextResponse("upstream went away", 502), "502 Bad Gateway: upstream went away"),
        (
            JSONResponse({"message": "Unauthorized", "type": "authentication_error"}, 401),
            "401 Unauthorized: Unauthorized (check TIDINGS_API_KEY",
        ),
        (
            JSONResponse({"message": "Not Found", "type": "invalid_request_error"}, 404),
            "404 Not Found: Not Found",
        ),
        (HTMLResponse("<html>some other site</html>", 200), "not Tidings' JSON"),
    ],
    ids=["500", "502-text", "401", "404", "not-tidings"],
)
def test_error_answers(response: Response, expected: str) -> None:
    with serve_asgi(_answering(response)) as url:
        _check_all(url, expected)
