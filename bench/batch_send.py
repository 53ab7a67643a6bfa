"""Batch sends: Mailgun calls made and time to hand off N recipients, batched and not.

Starts the Mailgun sandbox and `tidings serve` (SQLite, one process) as subprocesses, sends
N recipients with per-recipient data (multi-recipient `/send` requests of at most
``--per-request`` recipients each), and waits until no message is ENQUEUED any more: the
time to hand everything to Mailgun. Then the same again with
``TIDINGS_MAILGUN_BATCH_SIZE=1`` (one call per recipient) as the baseline. Both runs count
the Messages API calls the sandbox served.

    python bench/batch_send.py [--recipients 100000] [--per-request 5000]

Writes bench/results/batch_send.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from _harness import API_KEY, DOMAIN, SANDBOX_KEY, free_port
from _harness import wait_http as _wait_http

RESULTS = Path(__file__).parent / "results" / "batch_send.json"
ROUTE = "POST /v3/{domain}/messages"


def start(batch_size: int) -> tuple[list[subprocess.Popen[bytes]], str, str]:
    workdir = Path(tempfile.mkdtemp(prefix="tidings-bench-batch-"))
    sandbox_port, tidings_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIDINGS_", "MAILGUN_"))}
    sandbox = subprocess.Popen(
        [
            *(sys.executable, "-m", "tidings.cli", "sandbox"),
            *("--port", str(sandbox_port), "--event-delay", "3600"),
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
            "TIDINGS_MAILGUN_BATCH_SIZE": str(batch_size),
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
        f"http://127.0.0.1:{tidings_port}",
    )


async def run(batch_size: int, recipients: int, per_request: int) -> dict[str, Any]:
    processes, sandbox_url, tidings_url = start(batch_size)
    try:
        await asyncio.to_thread(_wait_http, f"{sandbox_url}/sandbox/api/stats")
        await asyncio.to_thread(_wait_http, f"{tidings_url}/health")
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            started = time.monotonic()
            for first in range(0, recipients, per_request):
                to = [
                    {"email": f"r{i}@example.test", "data": {"name": f"Reader {i}", "code": i}}
                    for i in range(first, min(first + per_request, recipients))
                ]
                body = {
                    "message": {
                        "to": to,
                        "content": {
                            "title": "News for {{name}}",
                            "body": "Hello {{name}}, your code is {{code}}.",
                        },
                    }
                }
                async with session.post(f"{tidings_url}/send", json=body) as answer:
                    if answer.status != 202:
                        raise RuntimeError(f"/send answered {answer.status}: {await answer.text()}")
            accepted_s = time.monotonic() - started
            query = {"status": "ENQUEUED", "limit": "1"}
            while True:
                async with session.get(f"{tidings_url}/messages", params=query) as r:
                    if not (await r.json())["results"]:
                        break
                await asyncio.sleep(0.2)
            handoff_s = time.monotonic() - started
            async with session.get(f"{sandbox_url}/sandbox/api/stats") as r:
                counts = (await r.json())["requests"].get(ROUTE, {})
        return {
            "batch_size": batch_size,
            "recipients": recipients,
            "mailgun_calls": sum(int(n) for n in counts.values()),
            "calls_by_answer": counts,
            "accept_s": round(accepted_s, 2),
            "handoff_s": round(handoff_s, 2),
            "recipients_per_s": round(recipients / handoff_s, 1),
        }
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--per-request", type=int, default=5000)
    args = parser.parse_args()
    batched = await run(1000, args.recipients, args.per_request)
    print(json.dumps(batched))
    single = await run(1, args.recipients, args.per_request)
    print(json.dumps(single))
    result = {
        "batched": batched,
        "one_call_each": single,
        "calls_ratio": round(single["mailgun_calls"] / max(1, batched["mailgun_calls"]), 1),
        "handoff_speedup": round(single["handoff_s"] / batched["handoff_s"], 2),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
