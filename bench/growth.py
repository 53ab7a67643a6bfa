"""Growth: throughput and resident memory as delayed messages pile up in the queue.

Per database, one ``tidings serve`` (API and workers in one process) sending to the sandbox:
after an uncounted warm-up, a burst of B messages due now on the empty queue (the
baseline), then the queue is
filled through ``/send`` with messages delayed a day (``message.delay.until``: they stay
queued, the dispatcher must step over them) up to each level (10,000 and 100,000 by
default), and at each level the server's resident memory is read (``VmRSS`` of its process
in /proc; its render-pool children apart) and another burst of B is sent. A burst's rate is
B / (first ``/send`` → the last of its messages accepted by the sandbox). The figures: each
burst's rate as a ratio of the empty queue's and of the first level's, and the memory per
queued message between the levels. On SQLite and on PostgreSQL (a scratch database each).

    python bench/growth.py [--levels 10000 100000] [--burst 1000] [--connections 32]

Writes bench/results/growth.json.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import _harness as h


async def burst(running: h.Stack, start: int, size: int, c: int, label: str) -> dict[str, Any]:
    load, elapsed = await h.send_until_accepted(running, start, size, c, label, what="burst")
    return {
        "burst": size,
        "elapsed_s": round(elapsed, 3),
        "per_s": round(size / elapsed, 1),
        "accept": load.summary(),
    }


async def fill(running: h.Stack, start: int, count: int, c: int, label: str) -> float:
    until = h.far_future()
    bodies = [h.send_body(start + i, delay_until=until) for i in range(count)]
    headers = {**running.headers, "Content-Type": "application/json"}
    with h.progress() as bar:
        load = await h.post_all(
            f"{running.tidings_url}/send",
            bodies,
            headers=headers,
            connections=c,
            progress=bar,
            label=f"{label}: queueing delayed",
        )
    if load.failed:
        raise RuntimeError(f"{load.failed} delayed messages refused: {load.errors}")
    return load.rate


def memory(running: h.Stack) -> dict[str, float]:
    return {
        "server_rss_mib": round(h.rss(running.server.pid) / 2**20, 1),
        "render_pool_rss_mib": round(h.children_rss(running.server.pid) / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=32)
    h.add_database_args(parser)
    args = parser.parse_args()
    load = h.warn_if_loaded()
    levels, size, c = sorted(args.levels), args.burst, args.connections
    results: dict[str, Any] = {}
    rows: list[list[object]] = []
    quick = max(levels) < 10_000 or size < 1000
    for backend in h.backends(args):
        steps: list[dict[str, Any]] = []
        with h.database(backend, args.postgres) as url, h.stack(url) as running:
            # An uncounted warm-up burst: connections, the render pool and caches are warm
            # before the empty queue's figure is taken.
            warm = min(size, 200)
            asyncio.run(burst(running, 0, warm, c, f"{backend}, warm-up"))
            next_id = warm
            empty = {"queued": 0, **memory(running)}
            empty.update(asyncio.run(burst(running, next_id, size, c, f"{backend}, 0 queued")))
            next_id += size
            steps.append(empty)
            queued = 0
            for level in levels:
                label = f"{backend}, {level:,} queued"
                rate = asyncio.run(fill(running, next_id, level - queued, c, label))
                next_id += level - queued
                queued = level
                step: dict[str, Any] = {"queued": level, "fill_accept_per_s": round(rate, 1)}
                step.update(memory(running))
                step.update(asyncio.run(burst(running, next_id, size, c, label)))
                next_id += size
                steps.append(step)
        first = steps[1] if len(steps) > 1 else steps[0]
        for step in steps:
            step["ratio_vs_empty"] = h.ratio(step["per_s"], steps[0]["per_s"])
            step["ratio_vs_first_level"] = h.ratio(step["per_s"], first["per_s"])
            rows.append(
                [
                    backend,
                    f"{step['queued']:,}",
                    step["server_rss_mib"],
                    step["per_s"],
                    step["accept"]["per_s"],
                    step["ratio_vs_empty"],
                    step["ratio_vs_first_level"],
                ]
            )
        last = steps[-1]
        per_message = (
            (last["server_rss_mib"] - first["server_rss_mib"])
            * 2**20
            / max(last["queued"] - first["queued"], 1)
        )
        results[backend] = {"steps": steps, "bytes_per_queued_message": round(per_message, 1)}
        rows.append([backend, "per queued msg", f"{per_message / 1024:.2f} KiB", "", "", "", ""])
        # Written after each database: a long run stopped on the next keeps this one.
        data = {"levels": levels, "burst": size, "connections": c, **results}
        h.write_result("growth", data, load, quick=quick)
    h.console.print(
        h.table(
            f"growth: bursts of {size} with delayed messages queued, {c} connections",
            ["database", "queued", "RSS MiB", "burst msg/s", "accept/s", "÷ empty", "÷ first"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
