"""Accepted messages per second of the sandbox's `POST /v3/{domain}/messages`.

Starts the sandbox under uvicorn (one worker, in a subprocess pinned to one core when the OS
allows), drives it with N keep-alive aiohttp clients for a bounded time, then does the same
against a bare Starlette form endpoint (parse the urlencoded body, answer JSON) as a
baseline, prints both and their ratio, and writes bench/results/sandbox_throughput.json.

    python bench/sandbox_throughput.py [--clients 32] [--duration 5] [--warmup 1]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp

DOMAIN = "sandbox.tidings.test"
API_KEY = "sandbox-api-key"
RESULTS = Path(__file__).parent / "results" / "sandbox_throughput.json"
SERVER_CPU = 0
CLIENT_CPU = 1


def baseline_app() -> Any:
    """The least a Starlette form endpoint can do: parse the body, answer JSON."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def messages(request: Request) -> Response:
        fields = parse_qsl((await request.body()).decode(), keep_blank_values=True)
        body = json.dumps({"id": f"<{len(fields)}@{DOMAIN}>", "message": "Queued. Thank you."})
        return Response(body.encode(), media_type="application/json")

    return Starlette(routes=[Route("/v3/{domain}/messages", messages, methods=["POST"])])


def serve(which: str, port: int) -> None:
    """Run one server (child process)."""
    import uvicorn

    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {SERVER_CPU})
    if which == "sandbox":
        from tidings.sandbox import SandboxSettings, create_app

        app = create_app(SandboxSettings(event_delay=0.05))
    else:
        app = baseline_app()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server(which: str) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", which, "--port", str(port)],
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{which} server did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def payload(n: int) -> bytes:
    return urlencode(
        [
            ("from", f"Tidings <noreply@{DOMAIN}>"),
            ("to", f"user{n}@example.test"),
            ("subject", "Your order has shipped"),
            ("text", "Hello, your order #1234 is on its way. " * 8),
            ("html", "<p>Hello, your order <b>#1234</b> is on its way.</p>" * 8),
            ("o:tag", "shipping"),
            ("o:tracking", "yes"),
            ("v:tidings-message-id", f"msg_{n:08d}"),
            ("h:Reply-To", "support@example.test"),
        ]
    ).encode()


async def load(base: str, clients: int, duration: float, warmup: float) -> dict[str, Any]:
    url = f"{base}/v3/{DOMAIN}/messages"
    auth = "Basic " + base64.b64encode(f"api:{API_KEY}".encode()).decode()
    headers = {"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"}
    bodies = [payload(n) for n in range(256)]
    statuses: Counter[int] = Counter()
    errors = 0
    started = time.monotonic()
    measure_from = started + warmup
    stop_at = measure_from + duration

    async def client(session: aiohttp.ClientSession, index: int) -> None:
        nonlocal errors
        n = index
        while (now := time.monotonic()) < stop_at:
            try:
                async with session.post(url, data=bodies[n % 256], headers=headers) as response:
                    await response.read()
                    if now >= measure_from:
                        statuses[response.status] += 1
            except aiohttp.ClientError:
                errors += 1
            n += clients

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(client(session, i) for i in range(clients)))
    return {
        "accepted_per_s": round(statuses[200] / duration, 1),
        "requests_per_s": round(sum(statuses.values()) / duration, 1),
        "statuses": {str(code): count for code, count in sorted(statuses.items())},
        "client_errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--serve", choices=["sandbox", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {CLIENT_CPU})

    results: dict[str, Any] = {}
    for which in ("sandbox", "baseline"):
        with server(which) as base:
            results[which] = asyncio.run(load(base, args.clients, args.duration, args.warmup))
            if which == "sandbox":
                with urlopen_json(f"{base}/sandbox/api/stats") as stats:
                    results[which]["server_counts"] = stats["requests"].get(
                        "POST /v3/{domain}/messages", {}
                    )
    ratio = results["sandbox"]["accepted_per_s"] / max(results["baseline"]["accepted_per_s"], 1)
    report = {
        "benchmark": "sandbox_throughput",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "clients": args.clients,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "server": "uvicorn, 1 worker, access log off" + _pinning_note(),
        "sandbox": results["sandbox"],
        "baseline_bare_starlette_form": results["baseline"],
        "sandbox_to_baseline": round(ratio, 3),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"sandbox:  {results['sandbox']['accepted_per_s']:>8.0f} accepted msgs/s "
        f"({args.clients} keep-alive aiohttp clients, {args.duration:g} s)"
    )
    print(f"baseline: {results['baseline']['accepted_per_s']:>8.0f} req/s  (bare Starlette form)")
    print(f"ratio:    {ratio:.2f}   → {RESULTS}")


@contextlib.contextmanager
def urlopen_json(url: str) -> Iterator[Any]:
    from urllib.request import urlopen

    with urlopen(url, timeout=10) as response:
        yield json.loads(response.read())


def _pinning_note() -> str:
    return ", server pinned to CPU 0, clients to CPU 1" if hasattr(os, "sched_setaffinity") else ""


if __name__ == "__main__":
    main()
