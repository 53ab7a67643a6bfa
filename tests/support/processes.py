"""The command lines of Tidings' scale-out processes, defined once.

`compose.yaml` runs exactly these (checked by tests/test_deploy_files.py), and the tests that
start real processes run them too (``spawn``), so the deployment and the tests cannot drift
apart. Where they listen and which database they share come from the environment
(TIDINGS_HOST, TIDINGS_PORT, TIDINGS_DATABASE_URL), as in the compose file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

API = ("tidings", "serve", "--no-workers")
WORKER = ("tidings", "worker")


def argv(command: tuple[str, ...]) -> list[str]:
    """``command`` for this interpreter (``tidings`` is its console script)."""
    assert command[0] == "tidings"
    return [sys.executable, "-m", "tidings.cli", *command[1:]]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any Tidings, Mailgun or Courier setting, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TIDINGS_", "MAILGUN_", "COURIER_"))
    }
    env.update(extra)
    return env


def spawn(
    command: tuple[str, ...], *, cwd: Path, log: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """Start ``command`` with its output (stdout and stderr) in ``log``."""
    return subprocess.Popen(
        argv(command),
        cwd=cwd,
        env=clean_env(**env),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def wait_healthy(
    url: str, proc: subprocess.Popen[bytes], log: Path, *, timeout: float = 60.0
) -> None:
    """Wait until ``proc`` answers ``GET {url}/health`` with 200; fail with its log if it
    exits first or takes longer than ``timeout`` (a safety net, not a timing check)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
        time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes], *, timeout: float = 30.0) -> None:
    """End ``proc`` as an operator would (SIGTERM), killing it if it does not exit in time."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
