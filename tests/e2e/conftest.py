"""End-to-end fixtures: a real Tidings server and real Mailgun sandboxes on loopback."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from courier import Courier

from tests.support import processes
from tests.support.servers import free_port, serve_asgi
from tidings.app import build_app
from tidings.config import Settings
from tidings.sandbox import Sandbox, SandboxSettings

API_KEY = "tk_test_0123456789abcdef"


@dataclass
class RunningSandbox:
    url: str
    sandbox: Sandbox
    settings: SandboxSettings

    def messages(self) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.url}/sandbox/api/messages", timeout=10)
        answer.raise_for_status()
        result: list[dict[str, Any]] = answer.json()
        return result

    def set_faults(self, faults: dict[str, Any]) -> None:
        httpx.post(f"{self.url}/sandbox/api/faults", json=faults, timeout=10).raise_for_status()

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = httpx.get(f"{self.url}/sandbox/api/stats", timeout=10).json()
        return result


@dataclass
class RunningTidings:
    url: str
    api_key: str
    settings: Settings

    def courier(self) -> Courier:
        return Courier(api_key=self.api_key, base_url=self.url, max_retries=0)

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.api_key}"}, timeout=30
        )

    def wait_for(
        self, message_id: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 20
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.http() as http:
            while True:
                details: dict[str, Any] = http.get(f"/messages/{message_id}").json()
                if predicate(details) or time.monotonic() > deadline:
                    return details
                time.sleep(0.05)

    def wait_status(self, message_id: str, *statuses: str, timeout: float = 20) -> dict[str, Any]:
        return self.wait_for(message_id, lambda d: d.get("status") in statuses, timeout)

    def add_provider(self, sandbox: RunningSandbox, **settings: Any) -> dict[str, Any]:
        """A Mailgun configuration that sends to ``sandbox`` (settings override the defaults;
        ``alias`` is taken out of them)."""
        alias = settings.pop("alias", None)
        values: dict[str, Any] = {
            "api_key": sandbox.settings.api_key,
            "domain": "mg.tidings.test",
            "host": sandbox.url,
            "from_address": "Acme <no-reply@mg.tidings.test>",
            "webhook_signing_key": sandbox.settings.signing_key,
            **settings,
        }
        with self.http() as http:
            answer = http.post(
                "/providers", json={"provider": "mailgun", "alias": alias, "settings": values}
            )
            assert answer.status_code == 200, answer.text
            created: dict[str, Any] = answer.json()
            return created

    def connect_webhooks(self) -> None:
        """Register this server's webhook URL at Mailgun (the sandbox) for the default
        configuration, through the connect route."""
        with self.http() as http:
            provider = http.get("/providers").json()["results"][0]
            http.post(f"/providers/{provider['id']}/connect").raise_for_status()

    def history(self, message_id: str) -> list[dict[str, Any]]:
        with self.http() as http:
            result: list[dict[str, Any]] = http.get(f"/messages/{message_id}/history").json()[
                "results"
            ]
            return result


def sandbox_settings(**overrides: Any) -> SandboxSettings:
    base: dict[str, Any] = {
        "domains": ["mg.tidings.test", "eu.tidings.test"],
        "event_delay": 0.02,
        "retry_scale": 0.001,
        "seed": 1,
    }
    base.update(overrides)
    return SandboxSettings(**base)


@pytest.fixture
def mailgun_sandbox() -> Iterator[RunningSandbox]:
    settings = sandbox_settings()
    sandbox = Sandbox(settings)
    with serve_asgi(sandbox.asgi()) as url:
        yield RunningSandbox(url, sandbox, settings)


@pytest.fixture
def eu_sandbox() -> Iterator[RunningSandbox]:
    settings = sandbox_settings()
    sandbox = Sandbox(settings)
    with serve_asgi(sandbox.asgi()) as url:
        yield RunningSandbox(url, sandbox, settings)


def tidings_settings(tmp_path: Path, port: int, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'tidings.db'}",
        "api_key": API_KEY,
        "public_url": f"http://127.0.0.1:{port}",
        "host": "127.0.0.1",
        "port": port,
        "sandbox": False,
        "dispatch_idle_s": 0.05,
        "retry_base_s": 0.05,
        "retry_max_s": 0.5,
        "in_doubt_lag_s": 0.5,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def start_tidings(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., RunningTidings]]:
    """Start a Tidings server (call it with Settings overrides); stopped after the test.

    As an operator would, it lists the test's Mailgun sandboxes in TIDINGS_PROVIDER_HOSTS:
    they are on loopback, which the outbound network policy refuses otherwise."""
    stack: list[Any] = []

    def start(*, run_workers: bool = True, **overrides: Any) -> RunningTidings:
        sandboxes = [
            request.getfixturevalue(name).url
            for name in ("mailgun_sandbox", "eu_sandbox")
            if name in request.fixturenames
        ]
        hosts = [*sandboxes, *filter(None, [overrides.pop("provider_hosts", None)])]
        overrides["provider_hosts"] = ",".join(hosts) or None
        port = free_port()
        settings = tidings_settings(tmp_path, port, **overrides)
        app = asyncio.run(build_app(settings, run_workers=run_workers))
        ctx = serve_asgi(app, port=port)
        url = ctx.__enter__()
        stack.append(ctx)
        return RunningTidings(url, API_KEY, settings)

    yield start
    for ctx in reversed(stack):
        ctx.__exit__(None, None, None)


@pytest.fixture
def tidings_with_mailgun(
    start_tidings: Callable[..., RunningTidings], mailgun_sandbox: RunningSandbox
) -> RunningTidings:
    """Tidings with a Mailgun configuration that sends to the standalone sandbox."""
    server = start_tidings()
    server.add_provider(mailgun_sandbox, alias="main")
    return server


@dataclass
class Spawned:
    """A Tidings process started from one of tests/support/processes.py's command lines."""

    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def spawn_tidings(tmp_path: Path) -> Iterator[Callable[..., Spawned]]:
    """Start ``processes.API`` or ``processes.WORKER`` (as compose.yaml runs them) with the
    given environment; each is stopped with SIGTERM after the test."""
    started: list[Spawned] = []

    def spawn(command: tuple[str, ...], **env: str) -> Spawned:
        log = tmp_path / f"{'-'.join(command[1:])}-{len(started)}.log"
        item = Spawned(processes.spawn(command, cwd=tmp_path, log=log, env=env), log)
        started.append(item)
        return item

    yield spawn
    for item in started:
        item.proc.send_signal(signal.SIGTERM)
    for item in started:
        try:
            item.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            item.proc.kill()
            item.proc.wait()
