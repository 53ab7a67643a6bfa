"""End-to-end send throughput: `POST /send` accepted per second, and messages SENT per second.

Starts the Mailgun sandbox and `tidings serve` (SQLite, one process) as subprocesses, posts
Courier `/send` requests from N keep-alive aiohttp clients for a bounded time, then waits
until every accepted message is SENT. As a baseline in the same run, the same clients post
the equivalent Mailgun form straight to the sandbox: the ratio says how much of Mailgun's
(here: the sandbox's) speed the whole Tidings path keeps, despite the durable queue.

    python bench/send_throughput.py [--clients 32] [--duration 5]

Writes bench/results/send_throughput.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

RESULTS = Path(__file__).parent / "results" / "send_throughput.json"
DOMAIN = "sandbox.tidings.test"
SANDBOX_KEY = "sandbox-api-key"
API_KEY = "tk_bench_0123456789abcdef0123"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_http(url: str, limit_s: float = 30) -> None:
    deadline = time.monotonic() + limit_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


async def drive(
    url: str, body: bytes, headers: dict[str, str], clients: int, duration: float
) -> tuple[int, float, list[str]]:
    """POST ``body`` from ``clients`` keep-alive clients for ``duration`` seconds."""
    ok = 0
    ids: list[str] = []
    stop_at = time.monotonic() + duration
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def one_client() -> None:
            nonlocal ok
            while time.monotonic() < stop_at:
                async with session.post(url, data=body) as response:
                    data = await response.read()
                    if response.status in (200, 202):
                        ok += 1
                        if response.status == 202:
                            ids.append(json.loads(data)["requestId"])

        started = time.monotonic()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed = time.monotonic() - started
    return ok, elapsed, ids


async def wait_all_sent(base: str, count: int, limit_s: float = 300) -> float:
    """Seconds until no message is ENQUEUED any more (checked through the API)."""
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        query = {"status": "ENQUEUED", "limit": "1"}
        while time.monotonic() - started < limit_s:
            async with session.get(f"{base}/messages", params=query) as r:
                if not (await r.json())["results"]:
                    return time.monotonic() - started
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{count} messages not all sent after {limit_s} s")


def start_servers() -> tuple[list[subprocess.Popen[bytes]], str, str]:
    workdir = Path(tempfile.mkdtemp(prefix="tidings-bench-"))
    sandbox_port, tidings_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIDINGS_", "MAILGUN_"))}
    sandbox = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tidings.cli",
            "sandbox",
            "--port",
            str(sandbox_port),
            "--event-delay",
            "3600",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    tidings = subprocess.Popen(
        [sys.executable, "-m", "tidings.cli", "serve", "--port", str(tidings_port)],
        cwd=workdir,
        env={
            **env,
            "TIDINGS_API_KEY": API_KEY,
            "TIDINGS_LOG_LEVEL": "warning",
            "TIDINGS_SANDBOX": "false",
            "MAILGUN_API_KEY": SANDBOX_KEY,
            "MAILGUN_DOMAIN": DOMAIN,
            "MAILGUN_HOST": f"http://127.0.0.1:{sandbox_port}",
            "TIDINGS_POLL_INTERVAL_S": "3600",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return (
        [tidings, sandbox],
        f"http://127.0.0.1:{sandbox_port}",
        (f"http://127.0.0.1:{tidings_port}"),
    )


async def measure(
    sandbox_url: str, tidings_url: str, clients: int, duration: float
) -> dict[str, Any]:
    await wait_http(f"{sandbox_url}/sandbox/api/stats")
    await wait_http(f"{tidings_url}/health")

    form = urlencode(
        [
            ("from", f"Bench <bench@{DOMAIN}>"),
            ("to", "bench@example.test"),
            ("subject", "Hello Ann"),
            ("text", "Your code is 1234."),
            ("html", "<p>Your code is 1234.</p>"),
            ("o:tag", "bench"),
            ("v:tidings-id", "x" * 32),
        ]
    ).encode()
    auth = base64.b64encode(f"api:{SANDBOX_KEY}".encode()).decode()
    base_ok, base_s, _ = await drive(
        f"{sandbox_url}/v3/{DOMAIN}/messages",
        form,
        {"Authorization": f"Basic {auth}", "Content-Type": "application/x-www-form-urlencoded"},
        clients,
        duration,
    )
    baseline_rate = base_ok / base_s

    send = json.dumps(
        {
            "message": {
                "to": {"email": "bench@example.test"},
                "content": {"title": "Hello {{name}}", "body": "Your code is {{code}}."},
                "data": {"name": "Ann", "code": "1234"},
                "metadata": {"tags": ["bench"]},
            }
        }
    ).encode()
    started = time.monotonic()
    accepted, accept_s, _ids = await drive(
        f"{tidings_url}/send",
        send,
        {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        clients,
        duration,
    )
    drain_s = await wait_all_sent(tidings_url, accepted)
    total_s = time.monotonic() - started
    accept_rate = accepted / accept_s
    sent_rate = accepted / total_s
    return {
        "clients": clients,
        "duration_s": duration,
        "baseline_sandbox_direct_per_s": round(baseline_rate, 1),
        "tidings_accepted": accepted,
        "tidings_send_accepted_per_s": round(accept_rate, 1),
        "tidings_end_to_end_sent_per_s": round(sent_rate, 1),
        "drain_after_load_s": round(drain_s, 2),
        "ratio_accepted_vs_baseline": round(accept_rate / baseline_rate, 3),
        "ratio_sent_vs_baseline": round(sent_rate / baseline_rate, 3),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    procs, sandbox_url, tidings_url = start_servers()
    try:
        result = asyncio.run(measure(sandbox_url, tidings_url, args.clients, args.duration))
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
    for key, value in result.items():
        print(f"{key:36} {value}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
