"""What the benches share: the processes they measure, the load they put on them, and how
they report.

* :func:`stack` starts the Mailgun sandbox and ``tidings serve`` (optionally API-only plus N
  ``tidings worker`` processes) as subprocesses on free ports and waits until they answer;
  :func:`bare_endpoint` starts the baseline app of ``bench/_bare.py``.
* :func:`database` gives a fresh database per run: SQLite in the run's directory, or a
  scratch PostgreSQL database made on the server of ``--postgres`` and dropped afterwards.
* :func:`post_all` posts a list of bodies from N keep-alive aiohttp connections and keeps
  every latency; :func:`wait_sandbox_accepted` reads the sandbox's own counters.
* :func:`signed_webhook` signs a Mailgun webhook as Mailgun does (hex HMAC-SHA256 of
  ``timestamp + token`` with the HTTP webhook signing key).
* :func:`machine` (with the load average), :func:`rss` and :func:`write_result` for the JSON
  in ``bench/results/``; :func:`progress` and :func:`table` for the terminal.

Nothing here is imported by Tidings; the benches run with ``python bench/<name>.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import math
import os
import platform
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

BENCH = Path(__file__).parent
RESULTS = BENCH / "results"
DOMAIN = "sandbox.tidings.test"
SANDBOX_KEY = "sandbox-api-key"
SIGNING_KEY = "sandbox-signing-key-bench"
API_KEY = "tk_bench_0123456789abcdef0123"
POSTGRES_DEFAULT = os.environ.get(
    "TIDINGS_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:55432/postgres"
)
MESSAGES_ROUTE = "POST /v3/{domain}/messages"
SENT = {"SENT", "DELIVERED", "OPENED", "CLICKED"}
# Wide enough for the tables when the output is a file, not a terminal.
console = Console(width=None if sys.stdout.isatty() else 130)


# --- processes -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes] | None = None, limit_s: float = 90) -> None:
    """Poll ``url`` until it answers below 500 (or ``proc`` died, or the deadline passed)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the process behind {url} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up in {limit_s} s")


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("TIDINGS_", "MAILGUN_"))}


def _stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Stack:
    """A running sandbox and Tidings (API process, and worker processes if any)."""

    sandbox_url: str
    tidings_url: str
    workdir: Path
    server: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_KEY}"}


@contextmanager
def sandbox_process(latency_ms: float = 0, event_delay: float = 3600) -> Iterator[str]:
    """The standalone sandbox; its events are an hour away by default, so that it does
    nothing but take sends (no webhooks are registered either)."""
    port = free_port()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "tidings.cli", "sandbox", "--port", str(port)),
            *("--domain", DOMAIN, "--api-key", SANDBOX_KEY, "--signing-key", SIGNING_KEY),
            *("--event-delay", str(event_delay), "--latency-ms", str(latency_ms)),
        ],
        env=_clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/sandbox/api/stats", proc)
        yield url
    finally:
        _stop([proc])


@contextmanager
def stack(
    database_url: str | None = None,
    *,
    latency_ms: float = 0,
    workers: int = 0,
    env: dict[str, str] | None = None,
) -> Iterator[Stack]:
    """A sandbox and ``tidings serve`` sending to it (the default Mailgun provider from the
    environment, with the sandbox's signing key, polling off). ``workers`` > 0: the server is
    API-only (``--no-workers``) and that many ``tidings worker`` processes deliver."""
    workdir = Path(tempfile.mkdtemp(prefix="tidings-bench-"))
    with sandbox_process(latency_ms) as sandbox_url:
        tidings_port = free_port()
        tidings_env = {
            **_clean_env(),
            "TIDINGS_API_KEY": API_KEY,
            "TIDINGS_LOG_LEVEL": "warning",
            "TIDINGS_SANDBOX": "false",
            "TIDINGS_PUBLIC_URL": f"http://127.0.0.1:{tidings_port}",
            "MAILGUN_API_KEY": SANDBOX_KEY,
            "MAILGUN_DOMAIN": DOMAIN,
            "MAILGUN_HOST": sandbox_url,
            "MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY,
            "TIDINGS_POLL_INTERVAL_S": "3600",
            **(env or {}),
        }
        if database_url:
            tidings_env["TIDINGS_DATABASE_URL"] = database_url
        command = [sys.executable, "-m", "tidings.cli", "serve", "--port", str(tidings_port)]
        server = subprocess.Popen(
            [*command, *(["--no-workers"] if workers else [])],
            cwd=workdir,
            env=tidings_env,
            stdout=subprocess.DEVNULL,
            stderr=(workdir / "serve.log").open("wb"),
        )
        running = Stack(sandbox_url, f"http://127.0.0.1:{tidings_port}", workdir, server)
        try:
            wait_http(f"{running.tidings_url}/health", server)
            for n in range(workers):
                running.workers.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "tidings.cli", "worker"],
                        cwd=workdir,
                        env=tidings_env,
                        stdout=subprocess.DEVNULL,
                        stderr=(workdir / f"worker{n}.log").open("wb"),
                    )
                )
            if workers or int(tidings_env.get("TIDINGS_WORKER_PROCESSES", "0")):
                warm_up(running)
            yield running
        finally:
            _stop([*running.workers, server])


def warm_up(running: Stack) -> None:
    """One message through, so that worker processes have started (their render pools too)
    before anything is measured: a run must not time their start-up."""
    before = accepted_count(sandbox_stats(running.sandbox_url))
    answer = httpx.post(
        f"{running.tidings_url}/send",
        content=send_body(999_999),
        headers={**running.headers, "Content-Type": "application/json"},
        timeout=60,
    )
    answer.raise_for_status()
    asyncio.run(
        wait_sandbox_accepted(
            running.sandbox_url, before + 1, label="warm-up", start=before, limit_s=180
        )
    )


@contextmanager
def bare_endpoint() -> Iterator[str]:
    """The baseline: a trivial FastAPI app under Tidings' uvicorn settings (bench/_bare.py)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(BENCH / "_bare.py"), str(port)],
        env=_clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", proc)
        yield url
    finally:
        _stop([proc])


# --- databases -------------------------------------------------------------------------


def add_database_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--postgres",
        default=POSTGRES_DEFAULT,
        help="PostgreSQL server URL (a scratch database is made and dropped per run).",
    )
    parser.add_argument("--no-sqlite", action="store_true", help="Skip SQLite.")
    parser.add_argument("--no-postgres", action="store_true", help="Skip PostgreSQL.")


def add_worker_processes_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--worker-processes",
        type=int,
        nargs="+",
        default=[0],
        help="TIDINGS_WORKER_PROCESSES for `tidings serve`, one run each (0: the workers in "
        "the API process; 1: in a child process beside it).",
    )


def processes_env(worker_processes: int) -> dict[str, str]:
    return {"TIDINGS_WORKER_PROCESSES": str(worker_processes)}


def mode_key(name: str, worker_processes: int) -> str:
    """The JSON key of a measurement: ``name``, suffixed with the worker processes if any."""
    return name if not worker_processes else f"{name}_wp{worker_processes}"


def backends(args: argparse.Namespace) -> list[str]:
    chosen = [] if args.no_sqlite else ["sqlite"]
    return [*chosen, *([] if args.no_postgres else ["postgresql"])]


async def _admin(base: str, statement: str) -> None:
    import asyncpg
    import sqlalchemy as sa

    url = sa.make_url(base)
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


@contextmanager
def database(backend: str, postgres: str) -> Iterator[str | None]:
    """None for SQLite (``tidings serve`` makes its file in the run's fresh directory), or
    the URL of a scratch PostgreSQL database, dropped afterwards."""
    if backend == "sqlite":
        yield None
        return
    import sqlalchemy as sa

    name = "tidings_bench_" + secrets.token_hex(6)
    asyncio.run(_admin(postgres, f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(postgres).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(postgres, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --- load ------------------------------------------------------------------------------


@dataclass
class Load:
    """What :func:`post_all` saw."""

    ok: int
    failed: int
    elapsed_s: float
    latencies_s: list[float]
    answers: list[Any]
    errors: dict[str, int]

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s else 0.0

    def pct_ms(self, q: float) -> float:
        return round(percentile(self.latencies_s, q) * 1000, 2)

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.ok + self.failed,
            "ok": self.ok,
            "failed": self.failed,
            "errors": self.errors,
            "elapsed_s": round(self.elapsed_s, 3),
            "per_s": round(self.rate, 1),
            "p50_ms": self.pct_ms(50),
            "p99_ms": self.pct_ms(99),
        }


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (the smallest value with q% of them at or below it)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


async def post_all(
    url: str,
    bodies: Sequence[bytes],
    *,
    headers: dict[str, str],
    connections: int = 32,
    progress: Progress | None = None,
    label: str = "",
    keep_answers: bool = False,
) -> Load:
    """POST every body once, ``connections`` keep-alive connections in parallel, and keep
    each request's latency (and, if asked, each 2xx JSON answer in body order)."""
    latencies: list[float] = []
    answers: list[Any] = [None] * len(bodies) if keep_answers else []
    errors: dict[str, int] = {}
    ok = 0
    following = iter(range(len(bodies)))
    task: TaskID | None = (
        progress.add_task(label, total=len(bodies)) if progress is not None else None
    )
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(
        connector=connector, headers=headers, timeout=timeout
    ) as session:

        async def one_connection() -> None:
            nonlocal ok
            for index in following:
                started = time.perf_counter()
                try:
                    async with session.post(url, data=bodies[index]) as response:
                        data = await response.read()
                        status = response.status
                except aiohttp.ClientError as exc:
                    data, status = b"", 0
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                latencies.append(time.perf_counter() - started)
                if 200 <= status < 300:
                    ok += 1
                    if keep_answers:
                        answers[index] = json.loads(data)
                elif status:
                    errors[str(status)] = errors.get(str(status), 0) + 1
                if progress is not None and task is not None:
                    progress.advance(task)

        started = time.perf_counter()
        await asyncio.gather(*(one_connection() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    return Load(ok, len(bodies) - ok, elapsed, latencies, answers, errors)


def send_body(n: int, *, delay_until: str | None = None, tag: str = "") -> bytes:
    """A Courier ``/send`` of inline content with two variables, to a distinct address."""
    local = f"r{n}+{tag}" if tag else f"r{n}"
    message: dict[str, Any] = {
        "to": {"email": f"{local}@example.test"},
        "content": {"title": "Hello {{name}}", "body": "Your code is {{code}}."},
        "data": {"name": "Ann", "code": f"{n:06d}"},
        "metadata": {"tags": ["bench"]},
    }
    if delay_until:
        message["delay"] = {"until": delay_until}
    return json.dumps({"message": message}).encode()


def far_future() -> str:
    """A ``delay.until`` that keeps a message queued for the whole run (a day ahead)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86400))


def mailgun_form(n: int) -> bytes:
    """The Mailgun form Tidings posts for :func:`send_body` (what the raw loop posts)."""
    from urllib.parse import urlencode

    return urlencode(
        [
            ("from", f"Bench <bench@{DOMAIN}>"),
            ("to", f"r{n}@example.test"),
            ("subject", "Hello Ann"),
            ("text", f"Your code is {n:06d}."),
            ("html", f"<p>Your code is {n:06d}.</p>"),
            ("o:tag", "bench"),
            ("v:tidings-id", secrets.token_hex(16)),
        ]
    ).encode()


def mailgun_headers() -> dict[str, str]:
    import base64

    auth = base64.b64encode(f"api:{SANDBOX_KEY}".encode()).decode()
    return {"Authorization": f"Basic {auth}", "Content-Type": "application/x-www-form-urlencoded"}


# --- the sandbox's view ----------------------------------------------------------------


def sandbox_stats(sandbox_url: str) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(f"{sandbox_url}/sandbox/api/stats", timeout=30).json()
    return stats


def accepted_count(stats: dict[str, Any]) -> int:
    """Messages API sends the sandbox answered 200."""
    return int(stats.get("requests", {}).get(MESSAGES_ROUTE, {}).get("200", 0))


def last_received_at(sandbox_url: str) -> float:
    """Wall-clock time the sandbox took its newest message (its inspection API)."""
    newest = httpx.get(f"{sandbox_url}/sandbox/api/messages", params={"limit": 1}, timeout=30)
    return float(newest.json()[0]["received_at"])


async def wait_sandbox_accepted(
    sandbox_url: str,
    target: int,
    *,
    progress: Progress | None = None,
    label: str = "at the sandbox",
    start: int = 0,
    limit_s: float = 3600,
) -> float:
    """Wait until the sandbox has accepted ``target`` sends in all; return the wall-clock
    time it took the last one (``received_at``), not the time this poll noticed. The bar
    counts from ``start`` (the sandbox's count before this load)."""
    task = progress.add_task(label, total=target - start) if progress is not None else None
    deadline = time.monotonic() + limit_s
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(f"{sandbox_url}/sandbox/api/stats") as answer:
                count = accepted_count(await answer.json())
            if progress is not None and task is not None:
                progress.update(task, completed=min(count, target) - start)
            if count >= target:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the sandbox took {count} of {target} in {limit_s} s")
            await asyncio.sleep(0.05)
    return last_received_at(sandbox_url)


async def send_until_accepted(
    running: Stack,
    start: int,
    n: int,
    connections: int,
    label: str,
    *,
    what: str = "/send",
) -> tuple[Load, float]:
    """Post ``n`` sends (numbered from ``start``) to Tidings and wait until the sandbox has
    taken them all: the load's record and the seconds from the first post to the last
    message the sandbox took (at least a microsecond)."""
    before = accepted_count(sandbox_stats(running.sandbox_url))
    bodies = [send_body(start + i) for i in range(n)]
    headers = {**running.headers, "Content-Type": "application/json"}
    with progress() as bar:
        started = time.time()
        load, last = await asyncio.gather(
            post_all(
                f"{running.tidings_url}/send",
                bodies,
                headers=headers,
                connections=connections,
                progress=bar,
                label=f"{label}: {what} accepted",
            ),
            wait_sandbox_accepted(
                running.sandbox_url,
                before + n,
                progress=bar,
                label=f"{label}: at the sandbox",
                start=before,
            ),
        )
    return load, max(last - started, 1e-6)


# --- webhooks --------------------------------------------------------------------------


def signed_webhook(event: dict[str, Any], key: str = SIGNING_KEY) -> bytes:
    """A Mailgun webhook body: the event and its signature over ``timestamp + token``."""
    timestamp = str(int(time.time()))
    token = secrets.token_hex(25)
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    body = {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": event,
    }
    return json.dumps(body).encode()


# --- reporting -------------------------------------------------------------------------


def rss(pid: int) -> int:
    """Resident set size of a process in bytes (``/proc/<pid>/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def children_rss(pid: int) -> int:
    """RSS of the direct children of ``pid`` (the render pool's processes), in bytes."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                total += rss(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return total


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def warn_if_loaded(limit: float = 1.5) -> list[float]:
    """The load average now; says so when it is too high for figures worth keeping."""
    load = load_average()
    if load[0] >= limit:
        console.print(
            f"[yellow]load average {load[0]} >= {limit}: other work shares the CPUs, "
            "the figures will be low and noisy[/yellow]"
        )
    return load


def write_result(
    name: str, data: dict[str, Any], load_at_start: list[float], *, quick: bool = False
) -> Path:
    """``bench/results/<name>.json``; ``<name>_quick.json`` for a smoke run (below 1,000
    messages: it shows the bench works, its figures are not a result)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}{'_quick' if quick else ''}.json"
    output = {
        "benchmark": name,
        "quick": quick,
        **data,
        "machine": machine(),
        "load_average_at_start": load_at_start,
        "load_average_at_end": load_average(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path.write_text(json.dumps(output, indent=2) + "\n")
    console.print(f"written to {path}")
    return path


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<44}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> Table:
    view = Table(title=title)
    for n, column in enumerate(columns):
        view.add_column(column, justify="left" if n == 0 else "right")
    for row in rows:
        view.add_row(*(str(cell) for cell in row))
    return view


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else 0.0
