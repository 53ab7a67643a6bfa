"""Render throughput: renders per second, before (a thread with a timeout) and after (the
render pool's worker processes), and what one trip to a worker costs.

The message is a typical Elemental email (a heading, text with variables, a loop over
order lines, a button, a divider, a quote): what the dispatcher renders for each message.
Four ways, each for a bounded time after a warm-up:

* inline: ``compose.render`` called directly, one at a time (no isolation; the floor);
* thread (before): ``asyncio.wait_for(asyncio.to_thread(compose.render, ...))`` with N
  renders in flight, as the dispatcher rendered before the pool;
* pool (after): ``RenderPool.run(compose.render, ...)`` with N renders in flight;
* pool, one at a time: the latency of one render through the pool;
* a no-op through the pool (``len(payload)``), one at a time: the per-render overhead
  itself (pickling the message, the socket round trip, unpickling the answer).

    python bench/render_throughput.py [--duration 3] [--rounds 3] [--concurrency 32]
                                      [--workers N]

Each way runs once per round, round after round (so that the machine's load changes fall
on all of them); the figures are each way's median round.

Writes bench/results/render_pool.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tidings.render.email import RenderedEmail
from tidings.render.pool import PoolConfig, RenderPool, default_size
from tidings.workers import compose

RESULTS = Path(__file__).parent / "results" / "render_pool.json"

PAYLOAD: dict[str, Any] = {
    "to": {"email": "ann@example.test"},
    "data": {
        "name": "Ann",
        "order": "A-1042",
        "lines": [
            {"item": f"Item {i}", "qty": i % 3 + 1, "price": f"{9 + i}.90"} for i in range(8)
        ],
        "total": "127.20",
    },
    "content": {
        "version": "2022-01-01",
        "elements": [
            {"type": "meta", "title": "Your order {{ order }} is on its way, {{ name }}"},
            {"type": "text", "content": "Order {{ order }}", "text_style": "h1"},
            {
                "type": "text",
                "content": "Hi {{ name }}, thanks for your order. It left our warehouse today "
                "and should arrive within **two days**.",
                "format": "markdown",
            },
            {
                "type": "text",
                "content": "{% for line in lines %}{{ line.qty }} × {{ line.item }}: "
                "€{{ line.price }}\n{% endfor %}Total: €{{ total }}",
            },
            {"type": "action", "content": "Track your parcel", "href": "https://example.test/t"},
            {"type": "divider"},
            {"type": "quote", "content": "Questions? Just reply to this email."},
        ],
    },
}


def render_once() -> RenderedEmail:
    return compose.render(PAYLOAD, compose.resolve_recipient(PAYLOAD, None))


async def drive(
    render: Callable[[], Awaitable[object]], concurrency: int, duration: float
) -> dict[str, float]:
    """``concurrency`` loops calling ``render`` for ``duration`` seconds."""
    latencies: list[float] = []
    deadline = time.monotonic() + duration

    async def loop() -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            await render()
            latencies.append(time.perf_counter() - started)

    started = time.monotonic()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    latencies.sort()
    return {
        "renders": len(latencies),
        "renders_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
    }


def _median_row(rows: list[dict[str, float]]) -> dict[str, Any]:
    """The round with the median throughput (and every round's throughput)."""
    ranked = sorted(rows, key=lambda row: row["renders_per_s"])
    return {**ranked[len(ranked) // 2], "rounds_per_s": [row["renders_per_s"] for row in rows]}


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    resolved = compose.resolve_recipient(PAYLOAD, None)

    async def inline() -> None:
        compose.render(PAYLOAD, resolved)

    async def threaded() -> None:
        await asyncio.wait_for(asyncio.to_thread(compose.render, PAYLOAD, resolved), timeout=10)

    pool = RenderPool(
        PoolConfig(
            size=args.workers,
            timeout_s=10,
            memory_mb=256,
            preload=("tidings.workers.compose",),
        )
    )
    started = time.monotonic()
    await asyncio.wait_for(pool.wait_ready(), 120)
    pool_start_s = round(time.monotonic() - started, 2)

    async def pooled() -> None:
        await pool.run(compose.render, PAYLOAD, resolved)

    async def no_op() -> None:
        await pool.run(len, PAYLOAD)

    ways: dict[str, tuple[Callable[[], Awaitable[object]], int]] = {
        "inline": (inline, 1),
        "thread_before": (threaded, args.concurrency),
        "pool_after": (pooled, args.concurrency),
        "pool_one_at_a_time": (pooled, 1),
        "pool_no_op_one_at_a_time": (no_op, 1),
    }
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in ways}
    try:
        for render, concurrency in ways.values():
            await drive(render, concurrency, args.warmup)
        # Round after round, so that a change in the machine's load falls on every way.
        for _ in range(args.rounds):
            for name, (render, concurrency) in ways.items():
                rounds[name].append(await drive(render, concurrency, args.duration))
    finally:
        await pool.close()
    results: dict[str, Any] = {name: _median_row(rows) for name, rows in rounds.items()}
    results["pool_start_s"] = pool_start_s
    results["per_render_overhead_ms"] = results["pool_no_op_one_at_a_time"]["p50_ms"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=3.0, help="per way and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=default_size())
    args = parser.parse_args()

    results = asyncio.run(bench(args))
    rows = [
        ("inline, one at a time (no isolation)", results["inline"]),
        (f"thread + timeout, {args.concurrency} in flight (before)", results["thread_before"]),
        (f"pool of {args.workers}, {args.concurrency} in flight (after)", results["pool_after"]),
        (f"pool of {args.workers}, one at a time", results["pool_one_at_a_time"]),
        ("a no-op through the pool, one at a time", results["pool_no_op_one_at_a_time"]),
    ]
    for name, row in rows:
        print(
            f"{name:48s} {row['renders_per_s']:8.1f} renders/s   "
            f"p50 {row['p50_ms']:7.2f} ms   p99 {row['p99_ms']:7.2f} ms"
        )
    before = results["thread_before"]["renders_per_s"]
    after = results["pool_after"]["renders_per_s"]
    print(f"pool / thread throughput: {after / before:.2f}x")
    overhead = results["per_render_overhead_ms"]
    print(f"per-render overhead of the pool (a no-op's round trip, p50): {overhead} ms")
    print(f"pool ready (fork server + {args.workers} workers) in {results['pool_start_s']} s")
    load = os.getloadavg()[0]
    result = {
        "benchmark": "render_pool",
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_1min_at_end": round(load, 1),
        },
        "settings": {
            "duration_s": args.duration,
            "rounds": args.rounds,
            "concurrency": args.concurrency,
            "workers": args.workers,
        },
        **results,
        "pool_over_thread": round(after / before, 2),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":  # the pool's fork server imports this module as __main__
    main()
