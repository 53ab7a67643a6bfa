"""The benches' shared harness (bench/_harness.py) signs webhooks as Tidings verifies them,
reads percentiles and memory as documented, and names its smoke results apart."""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tidings.providers.mailgun.webhooks import verify_signature

BENCH = Path(__file__).parents[1] / "bench"


@pytest.fixture(scope="module")
def harness() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module("_harness")
    finally:
        sys.path.remove(str(BENCH))


def test_signed_webhooks_verify_with_tidings_check(harness: ModuleType) -> None:
    body = json.loads(harness.signed_webhook({"event": "delivered"}))
    sig = body["signature"]
    assert verify_signature(harness.SIGNING_KEY, sig["timestamp"], sig["token"], sig["signature"])
    assert not verify_signature("another-key", sig["timestamp"], sig["token"], sig["signature"])
    again = json.loads(harness.signed_webhook({"event": "delivered"}))
    assert again["signature"]["token"] != sig["token"]  # a fresh token each: no replay


def test_percentile_and_rss(harness: ModuleType) -> None:
    values = [float(n) for n in range(1, 101)]
    assert harness.percentile(values, 50) == 50.0
    assert harness.percentile(values, 99) == 99.0
    assert harness.percentile([], 50) == 0.0
    assert harness.rss(os.getpid()) > 0


def test_smoke_runs_are_written_apart(
    harness: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(harness, "RESULTS", tmp_path)
    full = harness.write_result("x", {"a": 1}, [0.1, 0.2, 0.3])
    quick = harness.write_result("x", {"a": 1}, [0.1, 0.2, 0.3], quick=True)
    assert (full.name, quick.name) == ("x.json", "x_quick.json")
    written = json.loads(full.read_text())
    assert written["a"] == 1 and written["machine"]["nproc"] == os.cpu_count()
    assert written["load_average_at_start"] == [0.1, 0.2, 0.3]
