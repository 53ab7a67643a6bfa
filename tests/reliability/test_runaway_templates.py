"""50 runaway templates against a real `tidings serve`: each fails its own message with a
clear reason, harmless mail still goes out, and SIGTERM still ends the process, leaving no
render worker behind.

`tidings serve` runs in sandbox mode (nothing else to start) with a 1 s render budget. The
runaways are the ways a sender's template can try to stall a worker: loops that would run
for hours (caught by the sandbox's loop budget, or by the time budget), a slow loop inside
every cap (the time budget: the worker is killed and replaced), a memory bomb (the memory
budget) and an output bomb (the output cap). Handlebars has no recursion or arithmetic
growth a sender can reach (no partials of their own; the math helpers are capped).
"""

from __future__ import annotations

import os
import re
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

from tests.support.servers import free_port

API_KEY = "tk_reliability_0123456789abcdef"
RENDER_TIMEOUT_S = 1
GRACE_S = 30.0  # uvicorn's graceful shutdown timeout in `tidings serve`
SENT_OR_LATER = {"SENT", "DELIVERED", "OPENED", "CLICKED"}

TIME = r"the template took longer than 1 s \(TIDINGS_RENDER_TIMEOUT_S\)"
MEMORY = r"the template used more than \d+ MB \(TIDINGS_RENDER_MEMORY_MB\)"
LOOPS = r"its loops ran more than \d+ times \(TIDINGS_RENDER_MAX_LOOP_ITERATIONS\)"
OUTPUT = r"renders to more than \d+ characters \(TIDINGS_RENDER_MAX_OUTPUT_CHARS\)"
NAMES = {
    TIME: "time budget",
    MEMORY: "memory budget",
    LOOPS: "loop budget",
    OUTPUT: "output cap",
}

# Senders' data: a few hundred kilobytes, well inside /send's body limit.
_MANY = list(range(50_000))
_BIG = "x" * 300_000
_TWIN = "x" * 299_999 + "y"

# kind -> (template body, its data, what its message's error must say). A loop bomb may
# also run into the time budget first on a loaded machine: either is a clear, correct reason.
RUNAWAYS: dict[str, tuple[str, dict[str, Any], str]] = {
    "slow loop within the caps": (
        # 4 x 50k comparisons of two distinct 300 kB strings: within every cap, only slow
        # (seconds even on a fast, quiet machine, against the 1 s budget).
        "{{#each xs}}" + "{{#if (eq ../big ../twin)}}{{/if}}" * 4 + "{{/each}}",
        {"xs": _MANY, "big": _BIG, "twin": _TWIN},
        TIME,
    ),
    "nested huge loops": (
        "{{#each xs}}{{#each ../xs}}{{#each ../../xs}}{{/each}}{{/each}}{{/each}}",
        {"xs": _MANY},
        f"{LOOPS}|{TIME}",
    ),
    "memory bomb": (
        "{{#each xs}}{{../big}}{{/each}}",
        {"xs": _MANY, "big": _BIG},
        f"{MEMORY}|{TIME}",
    ),
    "30 MB of output": (
        "{{#each xs}}{{../big}}{{/each}}",
        {"xs": list(range(100)), "big": _BIG},
        f"{OUTPUT}|{TIME}",
    ),
}


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TIDINGS_", "MAILGUN_", "COURIER_"))
    }
    env.update(extra)
    return env


def _group(pgid: int) -> dict[int, tuple[int, int]]:
    """Live processes (not zombies) in process group ``pgid``: pid -> (ppid, CPU ticks)."""
    members = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, ppid, pgrp = fields[0], int(fields[1]), int(fields[2])
        if pgrp == pgid and state != "Z":
            members[int(entry.name)] = (ppid, int(fields[11]) + int(fields[12]))
    return members


def _render_cpu(server_pid: int) -> int:
    """CPU ticks used so far by the server's render workers (children of its fork server,
    so not children of the server itself)."""
    return sum(
        ticks
        for pid, (ppid, ticks) in _group(server_pid).items()
        if pid != server_pid and ppid != server_pid
    )


def _wait(predicate: Callable[[], bool], within_s: float, poll_s: float = 0.1) -> float:
    """Seconds until ``predicate()`` held; fails after ``within_s``."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > within_s:
            raise AssertionError(f"not true within {within_s} s")
        time.sleep(poll_s)
    return time.monotonic() - started


class Served:
    """`tidings serve` in its own process group (so that its children can be found)."""

    def __init__(self, workdir: Path) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = workdir / "serve.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tidings.cli", "serve", "--port", str(port)],
            cwd=workdir,
            env=_clean_env(
                TIDINGS_API_KEY=API_KEY,
                TIDINGS_LOG_LEVEL="info",
                TIDINGS_RENDER_TIMEOUT_S=str(RENDER_TIMEOUT_S),
                TIDINGS_DISPATCH_IDLE_S="0.05",
            ),
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30
        )

        def up() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError("tidings serve exited:\n" + self.output())
            try:
                return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        _wait(up, within_s=60)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def send(
        self, body: str, data: dict[str, Any] | None = None, to: str = "someone@example.test"
    ) -> str:
        message: dict[str, Any] = {"to": {"email": to}, "content": {"title": "Hi", "body": body}}
        if data:
            message["data"] = data
        answer = self.http.post("/send", json={"message": message})
        assert answer.status_code == 202, answer.text
        request_id: str = answer.json()["requestId"]
        return request_id

    def status(self, message_id: str) -> dict[str, Any]:
        details: dict[str, Any] = self.http.get(f"/messages/{message_id}").json()
        return details


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = Served(tmp_path)
    try:
        yield server
    finally:
        if server.proc.poll() is None:
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait(timeout=30)
        server.http.close()


def test_fifty_runaway_templates(served: Served) -> None:
    kinds = list(RUNAWAYS)
    runaway = {
        served.send(*RUNAWAYS[kinds[i % len(kinds)]][:2]): kinds[i % len(kinds)] for i in range(50)
    }
    posted_at = time.monotonic()
    harmless = served.send("Hello, nothing to see here.")

    # The API answers while the runaways render (it never waits for a render).
    health_ms = []
    for _ in range(20):
        started = time.monotonic()
        assert served.http.get("/health").status_code == 200
        health_ms.append((time.monotonic() - started) * 1000)

    _wait(lambda: served.status(harmless)["status"] in SENT_OR_LATER, within_s=240)
    harmless_s = time.monotonic() - posted_at

    def all_failed() -> bool:
        return all(served.status(m)["status"] == "UNDELIVERABLE" for m in runaway)

    _wait(all_failed, within_s=300, poll_s=0.5)
    runaways_s = time.monotonic() - posted_at
    reasons: Counter[tuple[str, str]] = Counter()
    examples: dict[str, str] = {}
    for message_id, kind in runaway.items():
        details = served.status(message_id)
        error = details["error"]
        assert details["reason"] == "FAILED", details
        assert error.startswith("rendering failed: "), (kind, error)
        assert re.search(RUNAWAYS[kind][2], error), (kind, error)
        caught_by = next(name for pattern, name in NAMES.items() if re.search(pattern, error))
        reasons[kind, caught_by] += 1
        examples.setdefault(caught_by, error)

    # Afterwards: a harmless message goes out with nothing in its way.
    after = served.send("Hello again.")
    started = time.monotonic()
    _wait(lambda: served.status(after)["status"] in SENT_OR_LATER, within_s=60, poll_s=0.02)
    after_s = time.monotonic() - started

    children = [pid for pid in _group(served.proc.pid) if pid != served.proc.pid]
    # SIGTERM with renders in flight: runaways that only the time budget stops, SIGTERM
    # once the workers are seen burning CPU on them.
    cpu_before = _render_cpu(served.proc.pid)
    for _ in range(4):
        served.send(*RUNAWAYS["slow loop within the caps"][:2])
    _wait(lambda: _render_cpu(served.proc.pid) >= cpu_before + 10, within_s=30, poll_s=0.02)
    started = time.monotonic()
    served.proc.send_signal(signal.SIGTERM)
    code = served.proc.wait(timeout=GRACE_S)
    exit_s = time.monotonic() - started
    assert code in (0, -signal.SIGTERM), served.output()
    assert "render pool stopped" in served.output()
    orphans_s = _wait(lambda: not _group(served.proc.pid), within_s=10, poll_s=0.02)

    print(
        f"\n50 runaway templates, render budget {RENDER_TIMEOUT_S} s:"
        f"\n  harmless message posted right after them: SENT after {harmless_s:.1f} s"
        f"\n  all 50 runaways UNDELIVERABLE after {runaways_s:.1f} s"
        f"\n  a harmless message posted afterwards: SENT after {after_s:.2f} s"
        f"\n  /health while they rendered: median {sorted(health_ms)[10]:.0f} ms, "
        f"max {max(health_ms):.0f} ms"
        f"\n  processes besides the server in its group (fork server, resource tracker, "
        f"render workers): {len(children)}"
        f"\n  SIGTERM (renders in flight) -> exit {code} after {exit_s:.1f} s "
        f"(grace {GRACE_S:g} s); no process of its group left {orphans_s:.2f} s later"
    )
    for (kind, caught_by), count in sorted(reasons.items()):
        print(f"  {count:2d} x {kind}: {caught_by}")
    for caught_by, error in examples.items():
        print(f"  e.g. {caught_by}: {error}")
