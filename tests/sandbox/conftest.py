"""Fixtures: a real sandbox on loopback, Mailgun's official SDK pointed at it, and a real
webhook receiver."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from mailgun.client import Client
from mailgun.config import RetryPolicy
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.servers import serve_asgi
from tidings.sandbox import Sandbox, SandboxSettings

KEY = "sandbox-api-key"
SIGNING_KEY = "sandbox-signing-key"
DOMAIN = "sandbox.tidings.test"


@dataclass
class Running:
    sandbox: Sandbox
    base: str

    def api(self, path: str) -> str:
        return f"{self.base}/sandbox/api{path}"


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll until ``predicate()`` is truthy; fail after ``timeout`` (a safety net only)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


def sdk(base: str) -> Client:
    # No SDK retries: each test sees exactly the answer the sandbox gave.
    return Client(auth=("api", KEY), api_url=base, retry_policy=RetryPolicy(max_retries=0))


@pytest.fixture
def make_running() -> Iterator[Callable[..., Running]]:
    with_stack: list[Any] = []

    def start(**overrides: Any) -> Running:
        settings = SandboxSettings(
            **{"event_delay": 0.01, "retry_scale": 0.00001, "seed": 7, **overrides}
        )
        sandbox = Sandbox(settings)
        manager = serve_asgi(sandbox.asgi())
        base = manager.__enter__()
        with_stack.append(manager)
        return Running(sandbox, base)

    yield start
    for manager in reversed(with_stack):
        manager.__exit__(None, None, None)


@pytest.fixture
def running(make_running: Callable[..., Running]) -> Running:
    return make_running()


@pytest.fixture
def client(running: Running) -> Iterator[Client]:
    with sdk(running.base) as mailgun:
        yield mailgun


@dataclass
class Receiver:
    """A webhook endpoint: records every POST; answers from a per-kind script, else 200."""

    base: str = ""
    posts: list[dict[str, Any]] = field(default_factory=list)
    script: dict[str, list[int]] = field(default_factory=dict)

    def url(self, kind: str) -> str:
        return f"{self.base}/hooks/{kind}"

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [post for post in self.posts if post["kind"] == kind]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    async def hook(request: Request) -> Response:
        kind = request.path_params["kind"]
        body = await request.json()
        state.posts.append(
            {"kind": kind, "body": body, "content_type": request.headers["content-type"]}
        )
        answers = state.script.get(kind)
        status = answers.pop(0) if answers else 200
        return Response("ok", status_code=status)

    app = Starlette(routes=[Route("/hooks/{kind}", hook, methods=["POST"])])
    with serve_asgi(app) as base:
        state.base = base
        yield state


def send(
    base: str, data: dict[str, Any], files: Any = None, domain: str = DOMAIN
) -> requests.Response:
    with sdk(base) as mailgun:
        response: requests.Response = mailgun.messages.create(domain=domain, data=data, files=files)
        return response


def basic_message(**extra: Any) -> dict[str, Any]:
    return {
        "from": f"Tidings <noreply@{DOMAIN}>",
        "to": "ann@example.test",
        "subject": "Hello",
        "text": "Hi there",
        **extra,
    }
