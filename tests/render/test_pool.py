"""The render pool with real worker processes: renders, budgets, replacement, shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.render.workload import sleep_and_return
from tidings.render.errors import RenderError
from tidings.render.pool import (
    PoolBusy,
    PoolClosed,
    PoolConfig,
    RenderCrashed,
    RenderOutOfMemory,
    RenderPool,
    RenderTimedOut,
)
from tidings.workers import compose

# Slow (a minute or more: ~100k comparisons of two distinct 1 MB strings), but within the
# sandbox's loop and output caps.
# Four comparisons of two distinct megabyte strings per item: ~20 s of work on a fast, quiet
# machine, so that the 5 s budget, not the machine's speed, decides.
SLOW = "{{#each xs}}" + "{{#if (eq ../big ../twin)}}{{/if}}" * 4 + "{{/each}}slow"
# A gigabyte of output, built before the output cap can look at it.
MEMORY_BOMB = "{{#each xs}}{{../big}}{{/each}}"


def _big() -> dict[str, Any]:
    return {"xs": list(range(99_000)), "big": "x" * 1_000_000, "twin": "x" * 999_999 + "y"}


def message(
    body: str, name: str = "Ann", data: dict[str, Any] | None = None
) -> tuple[dict[str, Any], compose.Resolved]:
    payload = {
        "to": {"email": "ann@example.test"},
        "content": {"title": "Hi {{ name }}", "body": body},
        "data": {"name": name, **(data or {})},
    }
    return payload, compose.resolve_recipient(payload, None)


def pid_alive(pid: int) -> bool:
    """Running (a zombie waiting for a parent to reap it does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def until(predicate: Callable[[], bool], within_s: float = 30) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not come true in time")
        await asyncio.sleep(0.02)


@pytest.fixture
async def pool() -> AsyncIterator[RenderPool]:
    pool = RenderPool(
        PoolConfig(
            size=2,
            timeout_s=5.0,
            memory_mb=64,
            preload=("tidings.workers.compose", "tests.render.workload"),
        )
    )
    await asyncio.wait_for(pool.wait_ready(), 60)
    try:
        yield pool
    finally:
        await pool.close()


async def test_a_normal_render(pool: RenderPool) -> None:
    rendered = await pool.run(compose.render, *message("Hello {{ name }}, <b>"))
    assert rendered.subject == "Hi Ann"
    assert rendered.text.strip() == "Hello Ann, <b>" and "Hello Ann, &lt;b&gt;" in rendered.html
    assert pool.counts["rendered"] == 1


async def test_template_errors_come_back_as_render_errors(pool: RenderPool) -> None:
    with pytest.raises(RenderError) as caught:
        await pool.run(compose.render, *message("{{#each items}}"))
    assert caught.value.path.startswith("message.content")
    assert "{{#each}} is never closed" in str(caught.value)
    pids = pool.worker_pids()
    assert (await pool.run(compose.render, *message("fine"))).subject == "Hi Ann"
    assert pool.worker_pids() == pids  # an error is not a reason to replace a worker


async def test_a_render_over_time_is_killed_and_replaced(pool: RenderPool) -> None:
    before = set(pool.worker_pids())
    started = time.monotonic()
    with pytest.raises(RenderTimedOut, match=r"took longer than 5 s \(TIDINGS_RENDER_TIMEOUT_S\)"):
        await pool.run(compose.render, *message(SLOW, data=_big()))
    print(f"timed out after {time.monotonic() - started:.2f} s")
    await asyncio.wait_for(pool.wait_ready(), 30)
    after = set(pool.worker_pids())
    (killed,) = before - after
    await until(lambda: not pid_alive(killed))
    assert len(after) == 2 and pool.counts["replaced"] == 1
    assert (await pool.run(compose.render, *message("fine"))).subject == "Hi Ann"


async def test_a_render_over_memory_fails_and_its_worker_is_replaced(pool: RenderPool) -> None:
    before = set(pool.worker_pids())
    with pytest.raises(
        RenderOutOfMemory, match=r"used more than 64 MB \(TIDINGS_RENDER_MEMORY_MB\)"
    ):
        await pool.run(compose.render, *message(MEMORY_BOMB, data=_big()))
    await asyncio.wait_for(pool.wait_ready(), 30)
    (gone,) = before - set(pool.worker_pids())
    await until(lambda: not pid_alive(gone))
    assert (await pool.run(compose.render, *message("fine"))).subject == "Hi Ann"
    assert pool.counts["out_of_memory"] == 1


async def test_a_worker_killed_mid_render_fails_that_render_only(pool: RenderPool) -> None:
    render = asyncio.create_task(pool.run(sleep_and_return, 30, 1))
    await until(lambda: pool.counts["rendered"] == 0 and len(pool.busy_pids()) == 1)
    (busy,) = pool.busy_pids()
    os.kill(busy, signal.SIGKILL)
    with pytest.raises(RenderCrashed, match="killed by SIGKILL"):
        await render
    assert await pool.run(sleep_and_return, 0, 7) == 7


async def test_an_idle_worker_that_dies_is_replaced(pool: RenderPool) -> None:
    victim = pool.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    await until(lambda: victim not in pool.worker_pids() and len(pool.worker_pids()) == 2)
    results = await asyncio.gather(*(pool.run(sleep_and_return, 0, i) for i in range(10)))
    assert results == list(range(10))  # no render was charged with the dead worker


async def test_concurrent_renders_and_a_runaway_among_them(pool: RenderPool) -> None:
    names = [f"n{i}" for i in range(40)]
    runaway = asyncio.create_task(pool.run(compose.render, *message(SLOW, data=_big())))
    rendered = await asyncio.gather(
        *(pool.run(compose.render, *message("Hi", name=name)) for name in names)
    )
    assert [r.subject for r in rendered] == [f"Hi {name}" for name in names]
    with pytest.raises(RenderTimedOut):
        await runaway


async def test_renders_wait_for_a_worker_in_arrival_order() -> None:
    pool = RenderPool(
        PoolConfig(size=1, timeout_s=30, memory_mb=64, preload=("tests.render.workload",))
    )
    try:
        await asyncio.wait_for(pool.wait_ready(), 60)
        finished: list[int] = []

        async def one(i: int) -> None:
            finished.append(await pool.run(sleep_and_return, 0.01, i))

        await asyncio.gather(*(one(i) for i in range(20)))
        assert finished == list(range(20))
    finally:
        await pool.close()


async def test_a_render_that_cannot_get_a_worker_in_time_is_told_to_come_back() -> None:
    pool = RenderPool(
        PoolConfig(
            size=1, timeout_s=30, memory_mb=64, max_wait_s=0.3, preload=("tests.render.workload",)
        )
    )
    try:
        await asyncio.wait_for(pool.wait_ready(), 60)
        long = asyncio.create_task(pool.run(sleep_and_return, 3, 1))
        await until(lambda: len(pool.busy_pids()) == 1)
        with pytest.raises(PoolBusy, match=r"no render worker was free for 0\.3 s"):
            await pool.run(sleep_and_return, 0, 2)
        assert await long == 1
        assert await pool.run(sleep_and_return, 0, 3) == 3
        assert pool.counts["busy"] == 1 and pool.counts["replaced"] == 0
    finally:
        await pool.close()


async def test_close_kills_every_worker_and_fails_waiting_renders() -> None:
    pool = RenderPool(
        PoolConfig(size=2, timeout_s=60, memory_mb=64, preload=("tests.render.workload",))
    )
    await asyncio.wait_for(pool.wait_ready(), 60)
    pids = pool.worker_pids()
    in_flight = [asyncio.create_task(pool.run(sleep_and_return, 20, i)) for i in range(3)]
    await until(lambda: len(pool.busy_pids()) == 2)
    await pool.close()
    for task in in_flight:
        with pytest.raises(PoolClosed):
            await task
    assert not [pid for pid in pids if pid_alive(pid)]
    with pytest.raises(PoolClosed):
        await pool.run(sleep_and_return, 0, 1)


PARENT = """
import asyncio, sys
from tidings.render.pool import PoolConfig, RenderPool

async def main() -> None:
    pool = RenderPool(PoolConfig(size=2, timeout_s=60, memory_mb=64))
    await pool.wait_ready()
    print("pids:", *pool.worker_pids(), flush=True)
    await asyncio.sleep(3600)

if __name__ == "__main__":
    asyncio.run(main())
"""


def test_workers_exit_when_their_parent_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        while line and not line.startswith("pids:"):  # the pool logs to stdout too
            line = parent.stdout.readline()
        pids = [int(p) for p in line.split()[1:]]
        assert len(pids) == 2 and all(pid_alive(p) for p in pids)
        parent.kill()
        parent.wait(timeout=30)
        started = time.monotonic()
        deadline = started + 30
        while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.02)
        print(f"workers gone {time.monotonic() - started:.2f} s after their parent's SIGKILL")
        assert not [p for p in pids if pid_alive(p)]
    finally:
        if parent.poll() is None:
            parent.kill()
