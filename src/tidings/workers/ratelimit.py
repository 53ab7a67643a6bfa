"""Per-configuration send rate limits: a token bucket each, in this process.

A send over the limit is not dropped: the dispatcher puts it back in the queue for when the
bucket will have a token.
"""

from __future__ import annotations

import time
from typing import Any


class RateLimiter:
    def __init__(self) -> None:
        # provider id -> (tokens, last refill time)
        self._buckets: dict[str, tuple[float, float]] = {}

    def reserve(self, key: str, limit: dict[str, Any] | None) -> float:
        """Take a token for ``key``; 0 if one was free, else the seconds until one will be."""
        if not limit:
            return 0.0
        per = {"second": 1.0, "minute": 60.0, "hour": 3600.0}[limit.get("period", "second")]
        rate = float(limit["rate"]) / per
        capacity = max(1.0, rate)  # at most one second's worth of burst
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / rate
