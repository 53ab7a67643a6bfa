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
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import _harness as h
import aiohttp

RESULTS = Path(__file__).parent / "results" / "send_throughput.json"
DOMAIN = h.DOMAIN
SANDBOX_KEY = h.SANDBOX_KEY
API_KEY = h.API_KEY


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


async def measure(
    sandbox_url: str, tidings_url: str, clients: int, duration: float
) -> dict[str, Any]:
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
    # The processes (sandbox, `tidings serve` on SQLite) come from the shared harness.
    with h.stack() as running:
        result = asyncio.run(
            measure(running.sandbox_url, running.tidings_url, args.clients, args.duration)
        )
    for key, value in result.items():
        print(f"{key:36} {value}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
