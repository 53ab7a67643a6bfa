"""The probes: /health (liveness) and /health/ready (database and each loop of the process),
both without an API key."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tidings.app import create_app
from tidings.config import Settings
from tidings.runtime import LoopHealth

API_KEY = "tk_test_health_0123456789"


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[[bool], TestClient]]:
    clients: list[TestClient] = []

    def make(run_workers: bool) -> TestClient:
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'tidings.db'}",
            api_key=API_KEY,
            sandbox=False,
            dispatch_idle_s=0.05,
        )
        client = TestClient(create_app(settings, run_workers=run_workers))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def _ready_when(client: TestClient, done: Callable[[dict[str, Any]], bool]) -> Any:
    deadline = time.monotonic() + 30
    while True:
        answer = client.get("/health/ready")
        if done(answer.json()) or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)


def test_an_api_only_process_is_ready_when_its_database_answers(
    start: Callable[[bool], TestClient],
) -> None:
    client = start(False)
    assert client.get("/health").status_code == 200
    answer = client.get("/health/ready")  # no API key
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "ready"
    assert [c["name"] for c in body["checks"]] == ["database"]
    assert body["checks"][0]["ok"] is True
    assert API_KEY not in answer.text


def test_each_loop_of_the_process_is_checked_and_measured(
    start: Callable[[bool], TestClient],
) -> None:
    client = start(True)
    names = {
        "database",
        "loop:dispatcher",
        "loop:poller",
        "loop:notifier",
        "loop:sweeper",
        "loop:suppression_sync",
    }

    def all_cycled(body: dict[str, Any]) -> bool:
        checks = {c["name"]: c for c in body["checks"]}
        return set(checks) == names and all(
            c["name"] == "database" or c["last_success_age_s"] is not None for c in checks.values()
        )

    answer = _ready_when(client, all_cycled)
    assert answer.status_code == 200, answer.text
    assert all_cycled(answer.json()), answer.text
    metrics = client.get("/metrics", headers={"Authorization": f"Bearer {API_KEY}"}).text
    for loop in ("dispatcher", "poller", "notifier", "sweeper", "suppression_sync"):
        assert f'tidings_loop_last_success_timestamp_seconds{{loop="{loop}"}}' in metrics

    # A loop that has not completed a cycle for longer than it may: not ready, and why.
    rt = client.app.state.runtime  # type: ignore[attr-defined]
    rt.loops["stuck"] = LoopHealth(
        name="stuck",
        stale_after_s=30.0,
        started_at=time.time() - 120,
        last_success=time.time() - 90,
        failing_since=time.time() - 80,
        failures=7,
        last_error="OperationalError",
    )
    answer = client.get("/health/ready")
    assert answer.status_code == 503
    stuck = next(c for c in answer.json()["checks"] if c["name"] == "loop:stuck")
    assert stuck["ok"] is False and stuck["failures"] == 7
    assert "no successful cycle for 30 s" in stuck["why"] and "OperationalError" in stuck["why"]
    assert answer.json()["status"] == "not ready"
