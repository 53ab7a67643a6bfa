"""`tidings sandbox` runs a real server the official SDK can use."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import requests

from tests.sandbox.conftest import basic_message, send
from tests.support.servers import free_port
from tidings.sandbox.command import build_settings


def test_build_settings_from_flags() -> None:
    settings = build_settings(domain=["a.test", "b.test"], fault_429=0.5, seed=3, retry_after=9)
    assert settings.domains == ["a.test", "b.test"]
    assert settings.faults.status_rates == {"429": 0.5}
    assert settings.faults.retry_after_s == 9
    assert settings.faults.seed == 3
    defaults = build_settings()
    assert defaults.domains == ["sandbox.tidings.test"]
    assert defaults.api_key == "sandbox-api-key"
    assert defaults.signing_key == "sandbox-signing-key"


def test_command_serves_mailgun() -> None:
    port = free_port()
    args = [
        "sandbox",
        "--port",
        str(port),
        "--domain",
        "mg.example.test",
        "--domain",
        "sandbox.tidings.test",
        "--api-key",
        "sandbox-api-key",
        "--event-delay",
        "0.01",
    ]
    process = subprocess.Popen(
        [sys.executable, "-c", "from tidings.cli import main; main()", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(f"{base}/sandbox/api/stats", timeout=1)
                break
            except requests.ConnectionError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        response = send(base, basic_message(), domain="mg.example.test")
        assert response.status_code == 200
        assert response.json()["id"].endswith("@mg.example.test>")
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)


def test_a_port_in_use_is_one_line() -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "tidings.cli", "sandbox", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}")
    assert result.stderr.count("\n") == 1
