"""Reliability fixtures: a private PostgreSQL cluster a test may stop and start, and Tidings
and the sandbox as real processes (``tidings serve``, ``tidings worker``, ``tidings sandbox``).

The shared PostgreSQL server (TIDINGS_TEST_POSTGRES_URL) is never stopped: a test that takes
the database away starts its own cluster with ``initdb`` in a temporary directory, run as the
``postgres`` user (``su postgres -c``, since the tests run as root) on a free port.
"""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import clean_env
from tests.support.servers import free_port

TIDINGS = [sys.executable, "-m", "tidings.cli"]
API_KEY = "tk_reliability_0123456789abcdef"
DOMAIN = "mg.tidings.test"
SANDBOX_KEY = "sandbox-api-key"
SANDBOX_SIGNING_KEY = "sandbox-signing-key"
# Statuses a message has once Mailgun took it.
SENT_OR_LATER = {"SENT", "DELIVERED", "OPENED", "CLICKED"}


def wait_until(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    """Poll ``condition`` until it returns something truthy (returned); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def _as_postgres(command: str) -> subprocess.CompletedProcess[str]:
    args = ["su", "postgres", "-c", command] if os.geteuid() == 0 else ["sh", "-c", command]
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


@dataclass
class PgCluster:
    """A private PostgreSQL server: ``stop()`` and ``start()`` it at will."""

    bin: Path
    data: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, args: str) -> None:
        done = _as_postgres(f"{self.bin}/pg_ctl -D {shlex.quote(str(self.data))} {args}")
        assert done.returncode == 0, done.stdout + done.stderr

    def start(self) -> None:
        options = (
            f"-k {self.data} -p {self.port} -c listen_addresses=127.0.0.1 "
            "-c max_connections=300 -c fsync=off -c synchronous_commit=off"
        )
        self._ctl(f"-o {shlex.quote(options)} -l {self.data}/log -w -t 60 start")

    def stop(self) -> None:
        """``-m fast``: connections are cut, transactions under way roll back."""
        self._ctl("-m fast -w -t 60 stop")

    def running(self) -> bool:
        done = _as_postgres(f"{self.bin}/pg_ctl -D {shlex.quote(str(self.data))} status")
        return done.returncode == 0


@pytest.fixture
def pg_cluster() -> Iterator[PgCluster]:
    pg_bin = _pg_bin()
    if pg_bin is None:
        pytest.skip("no PostgreSQL binaries (/usr/lib/postgresql/*/bin): cannot run a cluster")
    if os.geteuid() == 0 and shutil.which("su") is None:
        pytest.skip("running as root without `su`: cannot run PostgreSQL as its own user")
    root = Path(tempfile.mkdtemp(prefix="tidings-pg-"))
    data = root / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(data, "postgres")
    done = _as_postgres(f"{pg_bin}/initdb -D {shlex.quote(str(data))} -A trust -U postgres")
    if done.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"initdb failed: {done.stderr.strip()[-300:]}")
    cluster = PgCluster(pg_bin, data, free_port())
    cluster.start()
    try:
        yield cluster
    finally:
        if cluster.running():
            _as_postgres(f"{pg_bin}/pg_ctl -D {shlex.quote(str(data))} -m immediate -w stop")
        shutil.rmtree(root, ignore_errors=True)


def _env(**extra: str) -> dict[str, str]:
    return clean_env(PYTHONUNBUFFERED="1", **extra)


@dataclass
class Proc:
    """A real Tidings (or sandbox) process, its output in a log file."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] = field(init=False)

    def __post_init__(self) -> None:
        self.proc = subprocess.Popen(
            self.args, env=self.env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Sandbox:
    url: str
    proc: Proc

    def copies_by_tidings_id(self) -> Counter[str]:
        """How many copies of each Tidings message Mailgun (the sandbox) took."""
        answer = httpx.get(f"{self.url}/sandbox/api/messages", params={"limit": 100000}, timeout=30)
        answer.raise_for_status()
        return Counter(m["variables"].get("tidings-id", "") for m in answer.json())


@dataclass
class Cluster:
    """Tidings processes on one database, sending to one standalone sandbox."""

    workdir: Path
    database_url: str
    sandbox: Sandbox
    settings: dict[str, str]
    procs: list[Proc] = field(default_factory=list)

    def _start(self, name: str, *args: str) -> Proc:
        env = _env(
            TIDINGS_DATABASE_URL=self.database_url,
            TIDINGS_API_KEY=API_KEY,
            TIDINGS_SANDBOX="false",
            # As an operator would: the sandbox's base URL is a trusted provider host.
            TIDINGS_PROVIDER_HOSTS=self.sandbox.url,
            # RELIABILITY_LOG_LEVEL=debug shows each failed retry too (for a closer look).
            TIDINGS_LOG_LEVEL=os.environ.get("RELIABILITY_LOG_LEVEL", "info"),
            **self.settings,
        )
        proc = Proc(name, [*TIDINGS, *args], env, self.workdir / f"{name}.log")
        self.procs.append(proc)
        return proc

    def serve(self, name: str = "api") -> tuple[Proc, str]:
        port = free_port()
        proc = self._start(name, "serve", "--no-workers", "--port", str(port))
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert proc.alive(), proc.output()
            try:
                return httpx.get(f"{url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 60, f"{name} to answer /health")
        return proc, url

    def worker(self, name: str) -> Proc:
        return self._start(name, "worker")

    def wait_started(self, *workers: Proc) -> None:
        """Until each worker's loops run (a worker has no HTTP port: its log says so)."""
        for proc in workers:

            def started(proc: Proc = proc) -> bool:
                assert proc.alive(), proc.output()
                return "dispatcher started" in proc.output()

            wait_until(started, 60, f"{proc.name} to start")

    def add_provider(self, api_url: str) -> None:
        settings = {
            "api_key": SANDBOX_KEY,
            "domain": DOMAIN,
            "host": self.sandbox.url,
            "from_address": f"Acme <no-reply@{DOMAIN}>",
            "webhook_signing_key": SANDBOX_SIGNING_KEY,
            "polling": "on",
        }
        answer = httpx.post(
            f"{api_url}/providers",
            json={"provider": "mailgun", "alias": "main", "settings": settings},
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


@pytest.fixture
def sandbox_process(tmp_path: Path) -> Iterator[Sandbox]:
    """``tidings sandbox`` on a free port: the Mailgun the workers send to."""
    port = free_port()
    proc = Proc(
        "sandbox",
        [
            *TIDINGS,
            "sandbox",
            "--port",
            str(port),
            "--domain",
            DOMAIN,
            "--api-key",
            SANDBOX_KEY,
            "--signing-key",
            SANDBOX_SIGNING_KEY,
            "--event-delay",
            "0.02",
            "--retry-scale",
            "0.001",
            "--seed",
            "1",
        ],
        _env(),
        tmp_path / "sandbox.log",
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.alive(), proc.output()
        try:
            return httpx.get(f"{url}/sandbox/api/stats", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(up, 60, "the sandbox to answer")
        yield Sandbox(url, proc)
    finally:
        proc.stop()


# Short waits for the tests: a lost send is looked up soon, a failing loop retries soon.
FAST = {
    "TIDINGS_DISPATCH_IDLE_S": "0.2",
    "TIDINGS_IN_DOUBT_LAG_S": "3",
    "TIDINGS_RETRY_BASE_S": "0.2",
    "TIDINGS_RETRY_MAX_S": "2",
    "TIDINGS_LOOP_BACKOFF_MAX_S": "2",
    "TIDINGS_POLL_INTERVAL_S": "2",
    "TIDINGS_LEASE_S": "20",
}


@pytest.fixture
def make_cluster(tmp_path: Path, sandbox_process: Sandbox) -> Iterator[Callable[[str], Cluster]]:
    made: list[Cluster] = []

    def make(database_url: str) -> Cluster:
        cluster = Cluster(tmp_path, database_url, sandbox_process, dict(FAST))
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.stop()


@dataclass
class Load:
    """Posts messages from a few threads, one recipient each, and keeps every answer."""

    api_url: str
    threads: int = 4
    accepted: list[tuple[str, float]] = field(default_factory=list)  # (message id, when)
    refused: Counter[str] = field(default_factory=Counter)  # answer kind → count
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next: int = 0
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for n in range(self.threads):
            thread = threading.Thread(target=self._post_loop, name=f"load-{n}", daemon=True)
            thread.start()
            self._workers.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(timeout=60)

    def _post_loop(self) -> None:
        with httpx.Client(
            base_url=self.api_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=15
        ) as http:
            while not self._stop.is_set():
                with self._lock:
                    self._next += 1
                    n = self._next
                body = {
                    "message": {
                        "to": {"email": f"load{n}@example.test"},
                        "content": {"title": f"Load {n}", "body": "Hello {{n}}"},
                        "data": {"n": n},
                    }
                }
                try:
                    answer = http.post("/send", json=body)
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.refused[f"connection error ({type(exc).__name__})"] += 1
                    continue
                with self._lock:
                    if answer.status_code == 202:
                        self.accepted.append((answer.json()["requestId"], time.monotonic()))
                    else:
                        self.refused[f"HTTP {answer.status_code}"] += 1

    def accepted_count(self) -> int:
        with self._lock:
            return len(self.accepted)

    def refused_count(self) -> int:
        with self._lock:
            return sum(self.refused.values())


def statuses(api_url: str) -> dict[str, str]:
    """Every message's status, through the API (paged)."""
    found: dict[str, str] = {}
    cursor: str | None = None
    with httpx.Client(
        base_url=api_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30
    ) as http:
        while True:
            params: dict[str, Any] = {"limit": 500}
            if cursor:
                params["cursor"] = cursor
            page = http.get("/messages", params=params).json()
            for row in page["results"]:
                found[row["id"]] = row["status"]
            cursor = page["paging"]["cursor"]
            if not page["paging"]["more"]:
                return found


def ready(api_url: str) -> int | None:
    """/health/ready's status code, or None when the server does not answer."""
    try:
        return httpx.get(f"{api_url}/health/ready", timeout=5).status_code
    except httpx.HTTPError:
        return None
