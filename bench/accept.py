"""Accept: ``POST /send`` per second and its p50/p99 latency, against a bare endpoint.

32 keep-alive aiohttp connections post N Courier ``/send`` requests (inline content, a
distinct recipient each) twice per database: with the dispatcher idle (every message
delayed a day with ``message.delay.until``, so nothing is sent while they are accepted) and
with it busy (the messages are due now and are sent to the sandbox while the load runs). The
baseline, in the same run, is the same requests to a bare endpoint of the same stack: a
trivial FastAPI route that parses the JSON and answers 202, under the uvicorn settings of
``tidings serve`` (bench/_bare.py). 64 requests first warm each server up, uncounted. On
SQLite and on PostgreSQL (a scratch database per run).

    python bench/accept.py [--requests 5000] [--connections 32] [--no-postgres]

Writes bench/results/accept.json.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
from typing import Any

import _harness as h

WARMUP = 64  # requests first posted and not counted: connections opened, code paths warm


async def measure(url: str, bodies: list[bytes], connections: int, label: str) -> h.Load:
    headers = {"Authorization": f"Bearer {h.API_KEY}", "Content-Type": "application/json"}
    await h.post_all(f"{url}/send", bodies[-WARMUP:], headers=headers, connections=connections)
    with h.progress() as bar:
        return await h.post_all(
            f"{url}/send",
            bodies[:-WARMUP],
            headers=headers,
            connections=connections,
            progress=bar,
            label=label,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000, help="per measurement")
    parser.add_argument("--connections", type=int, default=32)
    h.add_database_args(parser)
    h.add_worker_processes_arg(parser)
    args = parser.parse_args()
    load = h.warn_if_loaded()
    n, c = args.requests, args.connections
    until = h.far_future()
    idle_bodies = [h.send_body(i, delay_until=until) for i in range(n + WARMUP)]
    busy_bodies = [h.send_body(i) for i in range(n + WARMUP)]

    with h.bare_endpoint() as bare_url:
        bare = asyncio.run(measure(bare_url, busy_bodies, c, "bare endpoint"))
    results: dict[str, Any] = {"bare_endpoint": bare.summary()}
    rows: list[list[object]] = [
        ["bare endpoint", "", "", bare.summary()["per_s"], *_lat(bare), 1.0]
    ]
    for backend in h.backends(args):
        for wp, (mode, bodies) in itertools.product(
            args.worker_processes, (("idle", idle_bodies), ("busy", busy_bodies))
        ):
            label = f"{backend}, dispatcher {mode}" + (f", {wp} worker processes" if wp else "")
            env = h.processes_env(wp)
            with h.database(backend, args.postgres) as url, h.stack(url, env=env) as running:
                got = asyncio.run(measure(running.tidings_url, bodies, c, label))
                sent = h.accepted_count(h.sandbox_stats(running.sandbox_url))
            summary = {
                **got.summary(),
                "sent_by_sandbox_during_load": sent,
                "ratio_vs_bare": h.ratio(got.rate, bare.rate),
            }
            results.setdefault(backend, {})[h.mode_key(f"dispatcher_{mode}", wp)] = summary
            rows.append([backend, mode, wp, summary["per_s"], *_lat(got), summary["ratio_vs_bare"]])
    h.console.print(
        h.table(
            f"/send accepted, {n} requests, {c} connections",
            ["endpoint", "dispatcher", "worker processes", "req/s", "p50 ms", "p99 ms", "× bare"],
            rows,
        )
    )
    h.write_result(
        "accept",
        {"requests": n, "connections": c, "worker_processes": args.worker_processes, **results},
        load,
        quick=args.requests < 1000,
    )


def _lat(load: h.Load) -> list[float]:
    return [load.pct_ms(50), load.pct_ms(99)]


if __name__ == "__main__":
    main()
