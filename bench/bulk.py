"""Bulk send: 100,000 recipients of one bulk job, Mailgun calls made and time to hand off.

Starts the Mailgun sandbox and `tidings serve` (API and workers in one process) as
subprocesses, creates a bulk job with inline content personalised per recipient, adds the
recipients in chunks of 5,000, runs the job, and follows it until every recipient's message
is SENT (Mailgun, here the sandbox, took it). It counts the sandbox's Messages API calls
(its ``/sandbox/api/stats`` request counters) and the time from ``run_job`` to the last
recipient handed off. Then the same again with ``TIDINGS_MAILGUN_BATCH_SIZE=1`` (one
Mailgun call per recipient), on a fresh database and sandbox, and prints both and their
ratios. On SQLite; also on PostgreSQL with ``--postgres URL`` (or TIDINGS_TEST_POSTGRES_URL;
a scratch database is created and dropped).

    python bench/bulk.py [--recipients 100000] [--postgres URL] [--latency-ms 50]

``--latency-ms`` makes the sandbox take that long to answer every call, as the internet to
Mailgun does; results then go to bulk_50ms.json (or bulk_quick_50ms.json).

Writes bench/results/bulk.json (bench/results/bulk_quick.json for fewer than 100,000).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

RESULTS = Path(__file__).parent / "results"
DOMAIN = "sandbox.tidings.test"
SANDBOX_KEY = "sandbox-api-key"
API_KEY = "tk_bench_0123456789abcdef0123"
CHUNK = 5000
SENT = {"SENT", "DELIVERED", "OPENED", "CLICKED"}
FAILED = {"UNDELIVERABLE", "UNROUTABLE", "UNMAPPED", "CANCELED", "FILTERED"}
console = Console()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_http(session: aiohttp.ClientSession, url: str, limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            async with session.get(url) as response:
                if response.status < 500:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


@contextmanager
def servers(database_url: str | None, batch_size: int | None) -> Iterator[tuple[str, str]]:
    """A sandbox (events far in the future: nothing but the sends) and a Tidings server
    sending to it, stopped afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="tidings-bench-bulk-"))
    sandbox_port, tidings_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIDINGS_", "MAILGUN_"))}
    sandbox = subprocess.Popen(
        [
            *(sys.executable, "-m", "tidings.cli", "sandbox", "--port", str(sandbox_port)),
            *("--event-delay", "3600", "--domain", DOMAIN, "--api-key", SANDBOX_KEY),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    tidings_env = {
        **env,
        "TIDINGS_API_KEY": API_KEY,
        "TIDINGS_LOG_LEVEL": "warning",
        "TIDINGS_SANDBOX": "false",
        "MAILGUN_API_KEY": SANDBOX_KEY,
        "MAILGUN_DOMAIN": DOMAIN,
        "MAILGUN_HOST": f"http://127.0.0.1:{sandbox_port}",
        "TIDINGS_POLL_INTERVAL_S": "3600",
    }
    if database_url:
        tidings_env["TIDINGS_DATABASE_URL"] = database_url
    if batch_size is not None:
        tidings_env["TIDINGS_MAILGUN_BATCH_SIZE"] = str(batch_size)
    tidings = subprocess.Popen(
        [sys.executable, "-m", "tidings.cli", "serve", "--port", str(tidings_port)],
        cwd=workdir,
        env=tidings_env,
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "tidings.log").open("wb"),
    )
    try:
        yield f"http://127.0.0.1:{sandbox_port}", f"http://127.0.0.1:{tidings_port}"
    finally:
        for proc in (tidings, sandbox):
            proc.terminate()
            proc.wait(timeout=60)


@contextmanager
def scratch_postgres(base: str) -> Iterator[str]:
    """A fresh PostgreSQL database on the server of ``base``, dropped afterwards."""
    import asyncpg
    import sqlalchemy as sa

    url = sa.make_url(base)
    name = "tidings_bench_" + secrets.token_hex(6)

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(
            host=url.host,
            port=url.port,
            user=url.username,
            password=url.password,
            database=url.database or "postgres",
        )
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def recipients(n: int) -> list[dict[str, Any]]:
    return [
        {
            "profile": {"email": f"r{i}@bulk.example.test", "name": f"Reader {i}"},
            "data": {"code": f"C{i:06d}"},
        }
        for i in range(n)
    ]


# The sandbox's Messages API routes, as its request counters name them.
SEND_ROUTES = ("POST /v3/{domain}/messages", "POST /v3/{domain}/messages.mime")


def message_calls(stats: dict[str, Any]) -> int:
    """Messages API calls the sandbox answered 200 (its counters, by route)."""
    requests: dict[str, dict[str, int]] = stats.get("requests", {})
    return sum(requests.get(route, {}).get("200", 0) for route in SEND_ROUTES)


async def one_run(
    label: str, n: int, database_url: str | None, batch_size: int | None, latency_ms: int = 0
) -> dict[str, Any]:
    users = recipients(n)
    with servers(database_url, batch_size) as (sandbox_url, tidings_url):
        headers = {"Authorization": f"Bearer {API_KEY}"}
        timeout = aiohttp.ClientTimeout(total=600)
        async with aiohttp.ClientSession(headers=headers, timeout=timeout) as http:
            await wait_http(http, f"{sandbox_url}/sandbox/api/stats")
            await wait_http(http, f"{tidings_url}/health")
            if latency_ms:
                # The internet between Tidings and Mailgun: every sandbox call takes this long.
                faults = {"latency_ms": latency_ms}
                async with http.post(f"{sandbox_url}/sandbox/api/faults", json=faults) as r:
                    assert r.status == 200, await r.text()
            message = {
                "event": "bench-announcement",
                "content": {
                    "title": "News for {{profile.name}}",
                    "body": "Hello {{profile.name}}, your code is {{data.code}}.",
                },
            }
            async with http.post(f"{tidings_url}/bulk", json={"message": message}) as r:
                assert r.status == 201, await r.text()
                job_id = (await r.json())["jobId"]
            progress = Progress(
                TextColumn(f"{label:<28}" + " {task.description:<10}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            )
            with progress:
                adding = progress.add_task("added", total=n)
                add_started = time.monotonic()
                for start in range(0, n, CHUNK):
                    part = users[start : start + CHUNK]
                    async with http.post(f"{tidings_url}/bulk/{job_id}", json={"users": part}) as r:
                        assert r.status == 204, await r.text()
                    progress.advance(adding, len(part))
                add_s = time.monotonic() - add_started
                accepted = progress.add_task("accepted", total=n)
                handed = progress.add_task("handed off", total=n)
                run_at = time.monotonic()
                async with http.post(f"{tidings_url}/bulk/{job_id}/run") as r:
                    assert r.status == 204, await r.text()
                accepted_s: float | None = None
                while True:
                    async with http.get(f"{tidings_url}/bulk/{job_id}") as r:
                        job = (await r.json())["job"]
                    statuses: dict[str, int] = job.get("statuses") or {}
                    sent = sum(v for k, v in statuses.items() if k in SENT)
                    failed = sum(v for k, v in statuses.items() if k in FAILED)
                    progress.update(accepted, completed=job["enqueued"])
                    progress.update(handed, completed=sent)
                    if accepted_s is None and job["status"] == "COMPLETED":
                        accepted_s = time.monotonic() - run_at
                    if job["status"] == "ERROR":
                        raise RuntimeError(f"the job failed: {job.get('error')}")
                    if job["status"] == "COMPLETED" and sent + failed >= n:
                        handoff_s = time.monotonic() - run_at
                        break
                    await asyncio.sleep(0.2)
            async with http.get(f"{sandbox_url}/sandbox/api/stats") as r:
                stats = await r.json()
    return {
        "recipients": n,
        "batch_size_setting": batch_size,
        "mailgun_calls": message_calls(stats),
        "sent": sent,
        "failed": failed,
        "add_users_s": round(add_s, 2),
        "run_to_all_accepted_s": round(accepted_s or handoff_s, 2),
        "run_to_last_handed_off_s": round(handoff_s, 2),
        "recipients_per_s": round(n / handoff_s, 1),
    }


def compare(batched: dict[str, Any], single: dict[str, Any]) -> dict[str, Any]:
    batching = batched["mailgun_calls"] < batched["recipients"]
    return {
        # Without the dispatcher's batch sends in this build both runs make one call per
        # recipient: such figures are a check that the bench works, not a result.
        "batching_in_this_build": batching,
        "batched": batched,
        "one_call_each": single,
        "calls_ratio": round(single["mailgun_calls"] / max(batched["mailgun_calls"], 1), 1),
        "handoff_speedup": round(
            single["run_to_last_handed_off_s"] / batched["run_to_last_handed_off_s"], 2
        ),
    }


def table(results: dict[str, dict[str, Any]]) -> Table:
    view = Table(title="bulk job: Mailgun calls and time to hand off")
    for column in ("database", "mode", "recipients", "Mailgun calls", "accepted s", "handoff s"):
        view.add_column(column, justify="left" if column in ("database", "mode") else "right")
    for database, result in results.items():
        for mode, name in (("batched", "batched"), ("one_call_each", "1 call each")):
            run = result[mode]
            view.add_row(
                database,
                name,
                str(run["recipients"]),
                str(run["mailgun_calls"]),
                str(run["run_to_all_accepted_s"]),
                str(run["run_to_last_handed_off_s"]),
            )
        view.add_row(
            database,
            "ratio",
            "",
            f"÷{result['calls_ratio']}",
            "",
            f"×{result['handoff_speedup']} speed",
        )
    return view


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("TIDINGS_TEST_POSTGRES_URL"),
        help="Also run on PostgreSQL (a server URL; default TIDINGS_TEST_POSTGRES_URL).",
    )
    parser.add_argument("--no-sqlite", action="store_true", help="Run on PostgreSQL only.")
    parser.add_argument(
        "--latency-ms",
        type=int,
        default=0,
        help="Added by the sandbox to every call (50 stands for the internet to Mailgun).",
    )
    args = parser.parse_args()
    n, lat = args.recipients, args.latency_ms
    results: dict[str, dict[str, Any]] = {}
    if not args.no_sqlite:
        batched = asyncio.run(one_run("sqlite, batched (default)", n, None, None, lat))
        single = asyncio.run(one_run("sqlite, one call each", n, None, 1, lat))
        results["sqlite"] = compare(batched, single)
    if args.postgres:
        with scratch_postgres(args.postgres) as url:
            batched = asyncio.run(one_run("postgresql, batched (default)", n, url, None, lat))
        with scratch_postgres(args.postgres) as url:
            single = asyncio.run(one_run("postgresql, one call each", n, url, 1, lat))
        results["postgresql"] = compare(batched, single)
    console.print(table(results))
    if not all(result["batching_in_this_build"] for result in results.values()):
        console.print(
            "[yellow]no batch sends in this build: both runs made one Mailgun call per "
            "recipient[/yellow]"
        )
    output = {
        **results,
        "sandbox_latency_ms": lat,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "bulk" if n >= 100_000 else "bulk_quick"
    path = RESULTS / (f"{name}_{lat}ms.json" if lat else f"{name}.json")
    path.write_text(json.dumps(output, indent=2) + "\n")
    console.print(f"written to {path}")


if __name__ == "__main__":
    main()
