"""Scale-out: PostgreSQL with 1 and with 3 ``tidings worker`` processes, the same load.

For each worker count: a scratch PostgreSQL database, ``tidings serve --no-workers`` (the
API only) and K ``tidings worker`` processes (the dispatcher; see tidings/worker.py) sending
to the sandbox, which adds ``--latency-ms`` to every send (50 ms by default: the internet to
Mailgun). After an uncounted warm-up burst, 32 keep-alive aiohttp connections post N
``/send``; the rate is N / (first ``/send`` → the last message accepted by the sandbox, read
from the sandbox). The CPU seconds each worker process used during the run show whether all
of them took part. The baseline, in the same run, is one worker: the figure is the ratio.

    python bench/scaleout.py [--messages 5000] [--workers 1 3] [--latency-ms 50]

Writes bench/results/scaleout.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

import _harness as h


def cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(running: h.Stack, start: int, n: int, c: int, label: str) -> dict[str, Any]:
    load, elapsed = await h.send_until_accepted(running, start, n, c, label)
    return {
        "messages": n,
        "elapsed_s": round(elapsed, 3),
        "per_s": round(n / elapsed, 1),
        "accept": load.summary(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--postgres", default=h.POSTGRES_DEFAULT, help="PostgreSQL server URL")
    args = parser.parse_args()
    load = h.warn_if_loaded()
    n, c = args.messages, args.connections
    runs: dict[str, Any] = {}
    rows: list[list[object]] = []
    for k in args.workers:
        label = f"postgresql, {k} worker{'s' if k > 1 else ''}"
        with (
            h.database("postgresql", args.postgres) as url,
            h.stack(url, latency_ms=args.latency_ms, workers=k) as running,
        ):
            asyncio.run(run(running, 0, args.warmup, c, f"{label}, warm-up"))
            dead = [w.pid for w in running.workers if w.poll() is not None]
            if dead:
                raise RuntimeError(f"worker processes {dead} exited; see {running.workdir}")
            cpu_before = [cpu_s(w.pid) for w in running.workers]
            result = asyncio.run(run(running, args.warmup, n, c, label))
            result["worker_cpu_s"] = [
                round(cpu_s(w.pid) - b, 2) for w, b in zip(running.workers, cpu_before, strict=True)
            ]
            result["api_cpu_s"] = round(cpu_s(running.server.pid), 2)
        runs[str(k)] = result
    base = runs[str(min(args.workers))]
    for k in args.workers:
        result = runs[str(k)]
        result["ratio_vs_fewest"] = h.ratio(result["per_s"], base["per_s"])
        rows.append(
            [
                k,
                result["per_s"],
                result["accept"]["per_s"],
                " ".join(str(x) for x in result["worker_cpu_s"]),
                result["ratio_vs_fewest"],
            ]
        )
    h.console.print(
        h.table(
            f"scale-out on PostgreSQL: {n} messages, sandbox +{args.latency_ms:g} ms, {c} conns",
            ["workers", "delivered msg/s", "accept/s", "worker CPU s", "÷ fewest"],
            rows,
        )
    )
    data = {
        "messages": n,
        "connections": c,
        "latency_ms": args.latency_ms,
        "workers": runs,
    }
    h.write_result("scaleout", data, load, quick=n < 1000)


if __name__ == "__main__":
    main()
