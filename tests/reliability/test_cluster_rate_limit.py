"""A configuration's rate limit and Mailgun's pauses hold for the whole cluster: three real
`tidings worker` processes, an API-only `tidings serve --no-workers` and a standalone
`tidings sandbox`, sharing nothing but a PostgreSQL database.

* The sandbox's acceptance times, counted in sliding windows, never exceed what one token
  bucket of the configuration's ``rate_limit`` allows (its one-second burst included), with
  three workers sending.
* A 429 with ``Retry-After`` from the sandbox holds every worker: no message is accepted for
  the configuration before the time Mailgun gave, messages sent meanwhile wait, and waiting
  spends no attempt.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.support.processes import clean_env
from tests.support.servers import free_port
from tidings.store.database import Database
from tidings.store.tables import attempts, history, messages, rate_buckets

TIDINGS = [sys.executable, "-m", "tidings.cli"]
API_KEY = "tk_reliability_0123456789abcdef"
MAILGUN_KEY = "key-cluster-sandbox"
SIGNING_KEY = "cluster-signing-key"
DOMAIN = "mg.cluster.test"
WORKERS = 3


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it is truthy; the timeout is a safety net only."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _env(**extra: str) -> dict[str, str]:
    return clean_env(PYTHONUNBUFFERED="1", **extra)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class Process:
    """One command of the cluster, its output in a file."""

    def __init__(self, name: str, args: list[str], workdir: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log = workdir / f"{name}.log"
        self.proc = subprocess.Popen(
            [*TIDINGS, *args],
            cwd=workdir,
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited:\n{self.output()[-4000:]}")
        return True

    def started(self) -> bool:
        """A worker's dispatcher is running (it logs so before its first claim)."""
        return self.alive() and "dispatcher started" in self.output()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


class Cluster:
    def __init__(self, workdir: Path, database_url: str) -> None:
        self.workdir = workdir
        self.database_url = database_url
        self.processes: list[Process] = []
        self.sandbox_url = ""
        self.api_url = ""
        self._loop = asyncio.new_event_loop()
        self._db: Database | None = None

    def start(self) -> None:
        sandbox_port, api_port = free_port(), free_port()
        self.sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        self.api_url = f"http://127.0.0.1:{api_port}"
        sandbox = self._run(
            "sandbox",
            [
                "sandbox",
                "--port",
                str(sandbox_port),
                "--domain",
                DOMAIN,
                "--api-key",
                MAILGUN_KEY,
                "--signing-key",
                SIGNING_KEY,
                "--event-delay",
                "0.05",
            ],
            _env(),
        )
        wait_until(
            lambda: sandbox.alive() and _answers(f"{self.sandbox_url}/sandbox/api/stats"),
            30,
            "tidings sandbox",
        )
        tidings_env = _env(
            TIDINGS_DATABASE_URL=self.database_url,
            TIDINGS_API_KEY=API_KEY,
            TIDINGS_SANDBOX="false",
            TIDINGS_PUBLIC_URL=self.api_url,
            TIDINGS_LOG_LEVEL="info",
            # The sandbox is on loopback: allowed by the operator, as a network policy needs.
            TIDINGS_ALLOW_PRIVATE_NETWORKS="true",
            TIDINGS_PROVIDER_HOSTS=self.sandbox_url,
            TIDINGS_DISPATCH_IDLE_S="0.05",
            # Small claims, so that every worker gets its share of the queue.
            TIDINGS_DISPATCH_BATCH="4",
            TIDINGS_DISPATCH_CONCURRENCY="8",
            TIDINGS_RETRY_BASE_S="0.2",
            TIDINGS_RETRY_MAX_S="1",
        )
        api = self._run("api", ["serve", "--port", str(api_port), "--no-workers"], tidings_env)
        wait_until(lambda: api.alive() and _answers(f"{self.api_url}/health"), 60, "tidings serve")
        for n in range(WORKERS):
            worker = self._run(f"worker{n}", ["worker"], tidings_env)
            wait_until(worker.started, 60, f"worker {n}")

    def _run(self, name: str, args: list[str], env: dict[str, str]) -> Process:
        process = Process(name, args, self.workdir, env)
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    # -- the API, the sandbox, the database -------------------------------------------------

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.api_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30
        )

    def add_provider(self, **settings: Any) -> str:
        values = {
            "api_key": MAILGUN_KEY,
            "domain": DOMAIN,
            "host": self.sandbox_url,
            "from_address": f"Cluster <no-reply@{DOMAIN}>",
            "webhook_signing_key": SIGNING_KEY,
            "polling": "off",
            **settings,
        }
        with self.http() as http:
            answer = http.post(
                "/providers", json={"provider": "mailgun", "alias": "main", "settings": values}
            )
        assert answer.status_code == 200, answer.text
        provider_id: str = answer.json()["id"]
        return provider_id

    def send(self, prefix: str, count: int) -> None:
        with self.http() as http:
            answer = http.post(
                "/send",
                json={
                    "message": {
                        "to": [{"email": f"{prefix}{n}@example.test"} for n in range(count)],
                        "content": {"title": "Hello", "body": "from the cluster"},
                    }
                },
            )
        assert answer.status_code == 202, answer.text

    def accepted(self) -> list[dict[str, Any]]:
        answer = httpx.get(
            f"{self.sandbox_url}/sandbox/api/messages", params={"limit": 5000}, timeout=30
        )
        answer.raise_for_status()
        result: list[dict[str, Any]] = answer.json()
        return result

    def wait_accepted(self, count: int, timeout: float = 180) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []

        def enough() -> bool:
            seen[:] = self.accepted()
            return len(seen) >= count

        wait_until(enough, timeout, f"{count} messages at the sandbox")
        # ... and their answers recorded by the workers.
        wait_until(
            lambda: (
                self.query(sa.select(sa.func.count()).where(messages.c.queued.is_(False)))[0][0]
                >= count
            ),
            timeout,
            f"{count} messages out of the queue",
        )
        return seen

    def set_faults(self, faults: dict[str, Any]) -> None:
        httpx.post(
            f"{self.sandbox_url}/sandbox/api/faults", json=faults, timeout=10
        ).raise_for_status()

    def send_answers(self) -> dict[str, int]:
        stats = httpx.get(f"{self.sandbox_url}/sandbox/api/stats", timeout=10).json()
        answers: dict[str, int] = stats["requests"].get("POST /v3/{domain}/messages", {})
        return answers

    def query(self, statement: Any) -> list[Any]:
        """Run one statement on the cluster's database (one handle, kept for the test)."""
        if self._db is None:
            self._db = Database(self.database_url)

        async def run(db: Database) -> list[Any]:
            async with db.read() as conn:
                return list(await conn.execute(statement))

        return self._loop.run_until_complete(run(self._db))

    def close(self) -> None:
        if self._db is not None:
            self._loop.run_until_complete(self._db.close())
        self._loop.close()


@pytest.fixture
def cluster(postgres_url: str, tmp_path: Path) -> Iterator[Cluster]:
    running = Cluster(tmp_path, postgres_url)
    try:
        running.start()
        yield running
    finally:
        running.stop()
        running.close()


def _send_latency_spread(cluster: Cluster, accepted: list[dict[str, Any]]) -> float:
    """How much the time from an attempt's start to the sandbox's acceptance varies (s): a
    token taken at one moment reaches the sandbox that much sooner or later than another."""
    started = {
        row.message_id: row.started_at.timestamp()
        for row in cluster.query(
            sa.select(attempts.c.message_id, attempts.c.started_at).where(
                attempts.c.outcome == "sent"
            )
        )
    }
    latencies = [
        m["received_at"] - started[m["variables"]["tidings-id"]]
        for m in accepted
        if m["variables"].get("tidings-id") in started
    ]
    assert len(latencies) == len(accepted)
    return max(latencies) - min(latencies)


def _max_in_window(times: list[float], window: float) -> int:
    """The most acceptances in any window of ``window`` seconds (starting at one of them)."""
    times = sorted(times)
    return max(bisect.bisect_left(times, start + window) - i for i, start in enumerate(times))


def test_three_workers_keep_to_one_rate_limit(cluster: Cluster) -> None:
    # Well below what three workers can send here, so that three separate buckets would
    # show (three times the rate).
    rate, count = 5.0, 60
    cluster.add_provider(rate_limit={"rate": rate, "period": "second"})
    cluster.send("rate", count)
    accepted = cluster.wait_accepted(count)
    assert sorted(m["recipient"] for m in accepted) == sorted(
        f"rate{n}@example.test" for n in range(count)
    )  # each exactly once
    times = sorted(m["received_at"] for m in accepted)
    senders = Counter(
        row.data.get("worker")
        for row in cluster.query(sa.select(history.c.data).where(history.c.type == "SENT"))
    )
    spread = _send_latency_spread(cluster, accepted)
    burst = max(1.0, rate)  # the bucket's capacity: one second's worth
    figures = []
    for window in (1.0, 2.0, 5.0):
        observed = _max_in_window(times, window)
        # One bucket hands out at most its burst plus the refill over the window; a send
        # reaches the sandbox up to `spread` s sooner or later than another taken after it.
        allowed = burst + rate * window + math.ceil(rate * spread)
        figures.append((window, observed, allowed))
    duration = times[-1] - times[0]
    print(
        f"\ncluster rate limit: {rate:g}/s, burst {burst:g}; {WORKERS} workers "
        f"(messages sent per worker: {sorted(senders.values())}), {count} messages over "
        f"{duration:.2f} s = {(count - 1) / duration:.1f}/s overall; send latency spread "
        f"{spread * 1000:.0f} ms"
    )
    for window, observed, allowed in figures:
        print(f"  max accepted in any {window:g} s window: {observed} (allowed {allowed})")
    assert len(senders) == WORKERS, senders  # every worker sent: the limit is the cluster's
    for window, observed, allowed in figures:
        assert observed <= allowed, (window, observed, allowed)
    # Over the whole run, too: no more than the burst plus the refill.
    assert count <= burst + rate * duration + math.ceil(rate * spread) + 1


def test_a_429_pauses_every_worker_until_the_time_given(cluster: Cluster) -> None:
    retry_after = 10
    first, later = 60, 30
    provider_id = cluster.add_provider(rate_limit={"rate": 20, "period": "second"})
    cluster.send("before", first)
    wait_until(lambda: len(cluster.accepted()) >= 20, 120, "the first sends")

    faults_on = time.time()
    cluster.set_faults({"status_rates": {"429": 1.0}, "retry_after_s": retry_after})
    in_force = time.time()  # every send that reaches the sandbox from now on is refused
    wait_until(lambda: cluster.send_answers().get("429", 0) >= 1, 60, "a 429")

    def settled() -> bool:
        """The pause is stored, and no send is under way: every message is back in the
        queue (held or throttled), so nothing decided before the pause is still in flight
        (those would have reached Mailgun during its refusal too)."""
        paused, leased, unanswered = cluster.query(
            sa.select(
                sa.select(rate_buckets.c.paused_until)
                .where(rate_buckets.c.key == provider_id)
                .scalar_subquery(),
                sa.select(sa.func.count())
                .where(messages.c.queued.is_(True), messages.c.lease_owner.is_not(None))
                .scalar_subquery(),
                sa.select(sa.func.count())
                .where(attempts.c.finished_at.is_(None))
                .scalar_subquery(),
            )
        )[0]
        return paused is not None and leased == 0 and unanswered == 0

    wait_until(settled, 60, "the pause to be stored and every send to be back in the queue")
    cluster.set_faults({})  # Mailgun would take messages again: only the pause holds them
    cleared = time.time()
    cluster.send("during", later)  # new work during the pause: any worker may claim it
    total = first + later
    accepted = cluster.wait_accepted(total)
    (paused_until,) = cluster.query(
        sa.select(rate_buckets.c.paused_until).where(rate_buckets.c.key == provider_id)
    )[0]
    until = paused_until.timestamp()
    answers = cluster.send_answers()
    started = {
        row.message_id: row.started_at.timestamp()
        for row in cluster.query(
            sa.select(attempts.c.message_id, attempts.c.started_at).where(
                attempts.c.outcome == "sent"
            )
        )
    }
    # Sends begun once the refusal was in force; sends already under way when it came may
    # have reached the sandbox just before it, as they would have reached Mailgun.
    begun_after = sorted(
        m["received_at"] for m in accepted if started[m["variables"]["tidings-id"]] > in_force
    )
    in_flight = [m for m in accepted if faults_on <= m["received_at"] < until]
    held = [
        row.data
        for row in cluster.query(sa.select(history.c.data).where(history.c.type == "THROTTLED"))
    ]
    holders = {h["worker"] for h in held}
    print(
        f"\n429 pause: Retry-After {retry_after} s; {answers.get('429', 0)} sends answered 429; "
        f"stored pause ends {until - faults_on:.2f} s after the fault was switched on (faults "
        f"cleared after {cleared - faults_on:.2f} s); {len(held)} holds by "
        f"{len(holders)} of {WORKERS} workers; first acceptance "
        f"{begun_after[0] - until:+.3f} s after the pause's end ({len(in_flight)} sends under "
        f"way at the 429 accepted before it); {len(accepted)} messages"
    )
    assert cleared < until  # the faults were off while the pause still held
    assert sorted(m["recipient"] for m in accepted) == sorted(
        [f"before{n}@example.test" for n in range(first)]
        + [f"during{n}@example.test" for n in range(later)]
    )  # each exactly once
    # Nothing reached Mailgun between the 429 and the time it gave.
    assert until >= faults_on + retry_after
    assert len(begun_after) >= later and begun_after[0] >= until, (begun_after[0], until)
    assert all(started[m["variables"]["tidings-id"]] <= in_force for m in in_flight)
    assert all(h["note"].startswith("paused: Mailgun asked to wait until ") for h in held)
    assert len(held) >= later  # every message sent during the pause was held
    # Holding spent no attempt: each message made one more attempt than it was throttled.
    throttled = Counter(
        row.message_id
        for row in cluster.query(
            sa.select(attempts.c.message_id).where(attempts.c.outcome == "throttled")
        )
    )
    retrying = Counter(
        row.message_id
        for row in cluster.query(
            sa.select(history.c.message_id).where(history.c.type == "RETRYING")
        )
    )
    assert retrying == throttled
    for row in cluster.query(sa.select(messages.c.id, messages.c.attempts)):
        assert row.attempts == throttled[row.id] + 1, row
