"""Functions the render pool's tests run in its workers: importable by name, and light, so
that a fresh worker imports this module in no time."""

from __future__ import annotations

import time


def sleep_and_return(seconds: float, value: int) -> int:
    """Busy for ``seconds``, then answer ``value``."""
    time.sleep(seconds)
    return value
