"""The Dockerfile and compose.yaml, checked as far as a machine without a container engine
can: they parse, every command they run exists (the `tidings` subcommands and flags, through
the typer app), the health check works against a real HTTP server, and the compose services
run exactly the command lines the tests run (tests/support/processes.py)."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.support.processes import API, WORKER
from tests.support.servers import free_port, serve_asgi
from tidings.cli import app

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Instruction:
    name: str
    args: str

    def exec_form(self) -> list[str]:
        """The JSON-array form (``CMD ["a", "b"]``); a shell form is split like a shell."""
        text = self.args.strip()
        if text.startswith("["):
            words = json.loads(text)
            assert isinstance(words, list) and all(isinstance(w, str) for w in words)
            return words
        return shlex.split(text)


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions, with comments dropped and continued lines joined."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = pending + line
        pending = ""
        name, _, args = whole.partition(" ")
        assert name.isalpha(), f"not an instruction: {whole!r}"
        instructions.append(Instruction(name.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def env_of(instructions: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in instructions:
        if item.name == "ENV":
            for pair in shlex.split(item.args):
                key, sep, value = pair.partition("=")
                assert sep, f"ENV KEY=value expected: {pair}"
                env[key] = value
    return env


def check_tidings_command(words: list[str]) -> None:
    """``tidings …`` parses with the real command line: the subcommands and every flag exist
    and take the values given (typer raises a usage error otherwise)."""
    assert words[0] == "tidings", words
    command: Any = typer.main.get_command(app)
    name, args, ctx = "tidings", list(words[1:]), None
    # Down the groups (they take no options of their own), then the command parses the rest.
    while hasattr(command, "commands"):
        ctx = command.make_context(name, list(args), parent=ctx)
        name, command, args = command.resolve_command(ctx, args)
        assert command is not None, words
    command.make_context(name, list(args), parent=ctx)


def test_the_checker_refuses_what_does_not_exist() -> None:
    check_tidings_command(["tidings", "serve", "--no-workers", "--host", "0.0.0.0"])
    for bad in (
        ["tidings", "serve", "--no-such-flag"],
        ["tidings", "serve", "--port", "eighty"],
        ["tidings", "srve"],
        ["tidings", "keys"],  # a group, not a command
    ):
        with pytest.raises(Exception) as caught:
            check_tidings_command(bad)
        # typer ships its own click: its usage errors are known by name.
        assert "UsageError" in [c.__name__ for c in type(caught.value).__mro__], bad


def dockerfile() -> list[Instruction]:
    return parse_dockerfile((ROOT / "Dockerfile").read_text())


def test_dockerfile() -> None:
    instructions = dockerfile()
    by_name: dict[str, list[Instruction]] = {}
    for item in instructions:
        by_name.setdefault(item.name, []).append(item)
    assert instructions[0].name == "FROM" and instructions[0].args == "python:3.11-slim"
    # Everything it copies is in the repository.
    for item in by_name["COPY"]:
        *sources, _destination = item.exec_form()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file"
    # It runs as a user that is not root, from before the entry point on.
    users = [i for i, item in enumerate(instructions) if item.name == "USER"]
    assert users and instructions[users[-1]].args not in ("root", "0")
    assert users[-1] < next(i for i, it in enumerate(instructions) if it.name == "ENTRYPOINT")
    # The entry point is `tidings`; its default command exists.
    (entrypoint,) = by_name["ENTRYPOINT"]
    (cmd,) = by_name["CMD"]
    assert entrypoint.exec_form() == ["tidings"]
    assert cmd.exec_form()[:1] == ["serve"] and "0.0.0.0" in cmd.exec_form()
    check_tidings_command(entrypoint.exec_form() + cmd.exec_form())
    # The SQLite file lives on the volume.
    env = env_of(instructions)
    database = env["TIDINGS_DATABASE_URL"]
    assert database.startswith("sqlite+aiosqlite:////")
    (volume,) = by_name["VOLUME"]
    (mount,) = volume.exec_form()
    assert Path(database.removeprefix("sqlite+aiosqlite:///")).parent == Path(mount)
    # The health check asks the readiness probe.
    (health,) = by_name["HEALTHCHECK"]
    assert "/health/ready" in health.args and "CMD " in health.args


def _healthcheck_command() -> list[str]:
    (health,) = [i for i in dockerfile() if i.name == "HEALTHCHECK"]
    words = Instruction("CMD", health.args.split("CMD ", 1)[1]).exec_form()
    assert words[0] == "python"
    return [sys.executable, *words[1:]]


def test_the_healthcheck_follows_the_readiness_probe() -> None:
    """The image's check, run here against a real server: healthy on 200 from
    /health/ready, unhealthy on 503, on 404 (another path) and with nothing listening."""
    answer = {"status": 200}

    async def ready(request: Request) -> Response:
        return PlainTextResponse("ready?", status_code=answer["status"])

    server = Starlette(routes=[Route("/health/ready", ready)])
    command = _healthcheck_command()

    def check(port: int) -> int:
        env = {"PATH": "/usr/bin:/bin", "TIDINGS_PORT": str(port)}
        return subprocess.run(command, env=env, capture_output=True, timeout=60).returncode

    port = free_port()
    with serve_asgi(server, port=port):
        assert check(port) == 0
        answer["status"] = 503
        assert check(port) != 0
    assert check(port) != 0  # nothing listens any more
    with serve_asgi(Starlette(routes=[]), port=port):
        assert check(port) != 0


def test_the_readiness_probe_is_a_route() -> None:
    from tidings.app import create_app
    from tidings.config import Settings

    app = create_app(Settings(sandbox=False))
    # FastAPI may keep an included router's routes behind one entry: ask it to build the URL.
    assert app.url_path_for("ready") == "/health/ready"


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_compose_runs_postgres_one_api_and_two_workers_as_the_tests_do() -> None:
    services: dict[str, Any] = compose()["services"]
    entrypoint = next(i for i in dockerfile() if i.name == "ENTRYPOINT").exec_form()
    commands: dict[str, tuple[str, ...]] = {}
    for name, service in services.items():
        if "build" in service:
            assert service["build"] == "."  # the Dockerfile above
            words = [*entrypoint, *service["command"]]
            check_tidings_command(words)
            commands[name] = tuple(words)
            env = service["environment"]
            assert env["TIDINGS_DATABASE_URL"].startswith("postgresql://")
            assert "@postgres:5432/" in env["TIDINGS_DATABASE_URL"]
            assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        else:
            assert service["image"].startswith("postgres:")
    assert sorted(commands.values()) == sorted([API, WORKER, WORKER])
    (api,) = [services[n] for n, c in commands.items() if c == API]
    assert api["environment"]["TIDINGS_HOST"] == "0.0.0.0"
    assert api["ports"] == ["8000:8000"]
    for name, command in commands.items():
        if command == WORKER:
            assert services[name]["healthcheck"] == {"disable": True}  # no HTTP to check
