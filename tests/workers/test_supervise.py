"""Supervised loops: a failing step is retried with backoff, each run of failures is logged
once (a warning, then "resumed after"), health and metrics follow, ``stop`` ends it all."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from tidings.config import Settings
from tidings.runtime import LoopHealth, Runtime
from tidings.store.database import Database
from tidings.store.keyring import KeyRing
from tidings.workers.supervise import (
    Backoff,
    Supervised,
    describe,
    is_fault,
    keep_running,
    until_done,
)


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 't.db'}",
        loop_backoff_base_s=0.001,
        loop_backoff_max_s=0.01,
        ready_stale_s=30,
    )
    db = Database(settings.database_url)
    yield Runtime(settings=settings, db=db, keyring=KeyRing(None, []))
    await db.close()


async def _within(coro: Any, seconds: float = 10) -> Any:
    """Awaits ``coro``; a deadline, not a pause: the test fails if it does not end."""
    return await asyncio.wait_for(coro, timeout=seconds)


def _sample(rt: Runtime, name: str, loop: str) -> float | None:
    value = rt.metrics.registry.get_sample_value(name, {"loop": loop})
    return None if value is None else float(value)


def test_backoff_doubles_to_its_cap_with_jitter() -> None:
    backoff = Backoff(0.5, 10.0, random.Random(7))
    for failures, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (5, 8.0), (6, 10.0), (200, 10.0)]:
        delays = {backoff.delay(failures) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (failures, delays)
        assert len(delays) > 1  # jittered, not all the same


def test_faults_are_told_from_bugs_and_described_in_one_line() -> None:
    error = sa.exc.OperationalError("SELECT secret", {"key": "v"}, ConnectionRefusedError(111))
    assert is_fault(error) and is_fault(ConnectionRefusedError()) and is_fault(TimeoutError())
    assert not is_fault(ValueError("bug"))
    text = describe(error)
    assert text.startswith("OperationalError: ") and "\n" not in text
    assert "[SQL" not in text and "'key'" not in text  # the statement and its parameters
    assert describe(TimeoutError()) == "TimeoutError"


async def test_an_outage_is_logged_once_and_the_loop_resumes(rt: Runtime) -> None:
    stop = asyncio.Event()
    calls = 0

    async def step() -> None:
        nonlocal calls
        calls += 1
        if calls <= 5:
            raise ConnectionRefusedError(111, "Connect call failed")
        if calls == 8:
            stop.set()

    loop = Supervised(rt, "demo", cadence_s=1.0, what="demo work")
    with capture_logs() as logs:
        await _within(loop.run(step, stop))
    assert calls == 8
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 1
    assert warnings[0]["event"].startswith("demo work failed; retrying with backoff")
    assert "ConnectionRefusedError" in warnings[0]["error"] and not warnings[0]["exc_info"]
    resumed = [e for e in logs if "resumed after" in e["event"]]
    assert len(resumed) == 1 and resumed[0]["log_level"] == "info"
    assert resumed[0]["failures"] == 5 and resumed[0]["loop"] == "demo"
    health = rt.loops["demo"]
    assert health.last_success is not None and health.failing_since is None
    assert not health.running  # it ended with stop
    assert _sample(rt, "tidings_loop_failures_total", "demo") == 5
    assert _sample(rt, "tidings_loop_last_success_timestamp_seconds", "demo") == (
        health.last_success
    )


async def test_each_outage_is_its_own_episode(rt: Runtime) -> None:
    stop = asyncio.Event()
    script = [OSError("down"), None, None, OSError("down again"), OSError("x"), None]

    async def step() -> None:
        outcome = script.pop(0)
        if not script:
            stop.set()
        if outcome is not None:
            raise outcome

    loop = Supervised(rt, "twice", cadence_s=1.0)
    with capture_logs() as logs:
        await _within(loop.run(step, stop))
    said = [e["log_level"] for e in logs if e.get("loop") == "twice"]
    assert [level for level in said if level != "debug"] == [
        "warning",
        "info",
        "warning",
        "info",
    ]
    assert _sample(rt, "tidings_loop_failures_total", "twice") == 3


async def test_a_bug_is_logged_with_its_traceback_and_does_not_end_the_loop(
    rt: Runtime,
) -> None:
    stop = asyncio.Event()
    calls = 0

    async def step() -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise KeyError("oops")
        stop.set()

    with capture_logs() as logs:
        await _within(Supervised(rt, "buggy", cadence_s=1.0).run(step, stop))
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 1 and warnings[0]["exc_info"] is True
    assert calls == 3


async def test_stop_cuts_a_long_backoff_short(rt: Runtime) -> None:
    rt.settings.loop_backoff_base_s = 3600.0
    rt.settings.loop_backoff_max_s = 3600.0
    stop = asyncio.Event()
    failed = asyncio.Event()

    async def step() -> None:
        failed.set()
        raise OSError("the database is down")

    loop = Supervised(rt, "slow", cadence_s=1.0)
    task = asyncio.create_task(loop.run(step, stop))
    await _within(failed.wait())
    stop.set()
    await _within(task)  # not an hour
    assert rt.loops["slow"].failures == 1 and rt.loops["slow"].last_error == "OSError"


async def test_keep_running_starts_a_worker_again_until_stop(rt: Runtime) -> None:
    stop = asyncio.Event()
    starts = 0

    async def worker() -> None:
        nonlocal starts
        starts += 1
        if starts == 1:
            raise RuntimeError("crashed")
        if starts == 2:
            return  # ended by itself, without stop
        stop.set()

    with capture_logs() as logs:
        await _within(keep_running(rt, "dispatcher", worker, stop))
    assert starts == 3
    events = [e["event"] for e in logs if e["log_level"] == "warning"]
    assert events == ["the dispatcher failed; starting it again"]


async def test_until_done_waits_for_success_or_stop(rt: Runtime) -> None:
    attempts = 0

    async def flaky() -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 4:
            raise ConnectionRefusedError(111, "refused")

    assert await _within(until_done(rt, flaky, asyncio.Event(), what="migrating")) is True
    assert attempts == 4

    stop = asyncio.Event()
    started = asyncio.Event()

    async def hangs() -> None:
        started.set()
        await asyncio.Event().wait()

    async def stopper() -> None:
        await started.wait()
        stop.set()

    done, _ = await _within(asyncio.gather(until_done(rt, hangs, stop, what="x"), stopper()))
    assert done is False


def test_a_loop_is_stale_after_its_cadence_plus_the_allowance() -> None:
    health = LoopHealth(name="poller", stale_after_s=40.0, started_at=1000.0)
    assert not health.stale(1039.0)  # no success yet: counted from the start
    assert health.stale(1041.0)
    health.last_success = 1100.0
    assert not health.stale(1139.0) and health.stale(1141.0)
