"""Deliver: end-to-end delivery rate against a raw aiohttp loop and against django-anymail.

For each database and each sandbox latency (0 ms and 50 ms by default: the sandbox waits that
long before answering every send, standing in for the internet between us and Mailgun):

* the raw loop: 32 keep-alive aiohttp connections post N Mailgun forms (what Tidings posts
  for the same message) straight to the sandbox — the speed of Mailgun itself, here;
* Tidings: the same 32 connections post N Courier ``/send`` requests to ``tidings serve``
  (API and workers in one process) sending to the same sandbox.

Each rate is N / (first request posted → the last message accepted by the sandbox, read
from the sandbox's own ``received_at``). Then, once per run at the slowest latency,
django-anymail's Mailgun backend (API URL pointed at a sandbox with that latency) sends M
messages the way a Django app does, one after another on one connection. Tidings' rate is
given as a ratio of each. On SQLite and on PostgreSQL (a scratch database per run).

    python bench/deliver.py [--messages 5000] [--latency-ms 0 50] [--anymail-messages 500]

Writes bench/results/deliver.json.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from typing import Any

import _harness as h
import httpx

COLUMNS = ["database", "latency ms", "worker processes", "raw loop", "Tidings", "÷ raw"]
COLUMNS += ["× anymail"]


async def raw_loop(sandbox_url: str, n: int, connections: int, label: str) -> dict[str, Any]:
    before = h.accepted_count(h.sandbox_stats(sandbox_url))
    bodies = [h.mailgun_form(i) for i in range(n)]
    with h.progress() as bar:
        started = time.time()
        load, last = await asyncio.gather(
            h.post_all(
                f"{sandbox_url}/v3/{h.DOMAIN}/messages",
                bodies,
                headers=h.mailgun_headers(),
                connections=connections,
                progress=bar,
                label=f"{label}: posted",
            ),
            h.wait_sandbox_accepted(sandbox_url, before + n, label=f"{label}: at the sandbox"),
        )
    return _rate(n, max(last - started, 1e-6), load)


async def tidings(
    running: h.Stack, n: int, connections: int, label: str, *, start_at: int = 0
) -> dict[str, Any]:
    load, elapsed = await h.send_until_accepted(running, start_at, n, connections, label)
    return _rate(n, elapsed, load)


def _rate(n: int, elapsed: float, load: h.Load) -> dict[str, Any]:
    return {
        "messages": n,
        "elapsed_s": round(elapsed, 3),
        "per_s": round(n / elapsed, 1),
        "posting": load.summary(),
    }


def anymail(sandbox_url: str, n: int) -> dict[str, Any]:
    """django-anymail's Mailgun backend, as a Django app sends: one message after another."""
    import django  # type: ignore[import-untyped]
    from django.conf import settings  # type: ignore[import-untyped]

    if not settings.configured:
        settings.configure(
            EMAIL_BACKEND="anymail.backends.mailgun.EmailBackend",
            ANYMAIL={
                "MAILGUN_API_KEY": h.SANDBOX_KEY,
                "MAILGUN_SENDER_DOMAIN": h.DOMAIN,
                "MAILGUN_API_URL": f"{sandbox_url}/v3/",
            },
            DEFAULT_FROM_EMAIL=f"Bench <bench@{h.DOMAIN}>",
        )
        django.setup()
    from django.core.mail import (  # type: ignore[import-untyped]
        EmailMultiAlternatives,
        get_connection,
    )

    before = h.accepted_count(h.sandbox_stats(sandbox_url))
    with h.progress() as bar:
        task = bar.add_task("django-anymail: sent", total=n)
        started = time.time()
        with get_connection() as connection:
            for i in range(n):
                mail = EmailMultiAlternatives(
                    subject="Hello Ann",
                    body=f"Your code is {i:06d}.",
                    to=[f"r{i}@example.test"],
                    connection=connection,
                )
                mail.attach_alternative(f"<p>Your code is {i:06d}.</p>", "text/html")
                mail.tags = ["bench"]
                mail.send()
                bar.advance(task)
    accepted = h.accepted_count(h.sandbox_stats(sandbox_url)) - before
    last = h.last_received_at(sandbox_url)
    elapsed = max(last - started, 1e-6)
    return {
        "messages": n,
        "accepted": accepted,
        "elapsed_s": round(elapsed, 3),
        "per_s": round(n / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0.0, 50.0])
    parser.add_argument("--anymail-messages", type=int, default=500, help="0: skip")
    h.add_database_args(parser)
    h.add_worker_processes_arg(parser)
    args = parser.parse_args()
    load = h.warn_if_loaded()
    n, c = args.messages, args.connections
    results: dict[str, Any] = {}
    rows: list[list[object]] = []
    for backend in h.backends(args):
        for wp, latency in itertools.product(args.worker_processes, args.latency_ms):
            label = f"{backend}, {latency:g} ms" + (f", {wp} worker processes" if wp else "")
            env = h.processes_env(wp)
            with (
                h.database(backend, args.postgres) as url,
                h.stack(url, latency_ms=latency, env=env) as s,
            ):
                raw = asyncio.run(raw_loop(s.sandbox_url, n, c, f"{label}, raw loop"))
                # The raw loop's messages are forgotten: both runs start on an empty sandbox.
                httpx.delete(f"{s.sandbox_url}/sandbox/api/messages", timeout=60)
                ours = asyncio.run(tidings(s, n, c, f"{label}, Tidings"))
            entry = {
                "raw_loop": raw,
                "tidings": ours,
                "ratio_vs_raw": h.ratio(ours["per_s"], raw["per_s"]),
            }
            results.setdefault(backend, {})[h.mode_key(f"{latency:g}ms", wp)] = entry
            rows.append(
                [
                    *(backend, f"{latency:g}", wp, raw["per_s"], ours["per_s"]),
                    *(entry["ratio_vs_raw"], ""),
                ]
            )
    if args.anymail_messages:
        latency = max(args.latency_ms)
        with h.sandbox_process(latency) as sandbox_url:
            django_rate = anymail(sandbox_url, args.anymail_messages)
        results["django_anymail"] = {"latency_ms": latency, **django_rate}
        for backend in h.backends(args):
            for wp in args.worker_processes:
                entry = results[backend][h.mode_key(f"{latency:g}ms", wp)]
                entry["times_django_anymail"] = h.ratio(
                    entry["tidings"]["per_s"], django_rate["per_s"]
                )
        rows.append(["django-anymail", f"{latency:g}", "", "", django_rate["per_s"], "", ""])
        for row in rows:
            if row[1] == f"{latency:g}" and row[0] != "django-anymail":
                row[6] = f"×{h.ratio(float(str(row[4])), django_rate['per_s'])}"
    h.console.print(
        h.table(
            f"end-to-end delivery, {n} messages, {c} connections (msg/s)",
            COLUMNS,
            rows,
        )
    )
    h.write_result(
        "deliver",
        {
            **{"messages": n, "connections": c, "latencies_ms": args.latency_ms},
            **{"worker_processes": args.worker_processes, **results},
        },
        load,
        quick=n < 1000,
    )


if __name__ == "__main__":
    main()
