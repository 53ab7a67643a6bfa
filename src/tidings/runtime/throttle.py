"""Throttling of failed keys: per client address and over all addresses, in memory per process.

Each address has a token bucket of failures: ``burst`` wrong keys at once, then one more every
``60 / per_minute`` seconds. While an address's bucket is empty, everything it sends is refused
with 429 and ``Retry-After`` without the key being looked at, a correct key included: otherwise
the guessing would simply go on, the answers telling right from wrong. A client that mistyped
once or twice never notices; one that got throttled waits seconds, not hours.

A second bucket counts the failures of all addresses together (many addresses guessing a
little each). While it is empty, addresses that have not shown a valid key lately are refused
too; addresses that have keep working, so that a spray of guesses from elsewhere does not lock
out the clients that were already using the server.

IPv6 addresses are counted by their /64 (one host usually holds a whole /64). The address is
the connection's peer as uvicorn gives it: behind a reverse proxy, that is the proxy, unless
uvicorn is told to trust its ``X-Forwarded-For`` (``FORWARDED_ALLOW_IPS``; uvicorn trusts
127.0.0.1 by default). Each episode (an address refused, until its bucket is full again) is
logged once with the address and how many requests it had refused; never the key tried.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from starlette.exceptions import HTTPException
from starlette.requests import Request

log = structlog.get_logger("tidings.throttle")
EVERYONE = "*"  # the name of the bucket of all addresses, in log lines
MAX_TRACKED = 50_000  # addresses whose failures are remembered (the oldest are forgotten)
MAX_TRUSTED = 10_000


@dataclass(frozen=True)
class Limits:
    """Wrong keys allowed at once, and how many more per minute, per address and in all."""

    burst: int = 10
    per_minute: float = 10.0
    global_burst: int = 200
    global_per_minute: float = 120.0
    # How long an address that showed a valid key is exempt from the bucket of everyone.
    trusted_s: float = 3600.0


@dataclass
class _Bucket:
    tokens: float
    at: float
    episode_refused: int = 0  # requests refused in the episode under way (0: none under way)
    episode_started: float = 0.0

    def refill(self, now: float, capacity: int, per_s: float) -> None:
        self.tokens = min(float(capacity), self.tokens + (now - self.at) * per_s)
        self.at = now

    def wait_s(self, per_s: float) -> float:
        return max(0.0, (1.0 - self.tokens) / per_s)


class Refused(Exception):
    """The address is throttled: answer 429 with ``Retry-After: retry_after_s``."""

    def __init__(self, retry_after_s: int, message: str) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.message = message


def client_key(host: str | None) -> str:
    """What an address is counted by: itself, or for IPv6 its /64."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


class Throttle:
    """The buckets of one process. ``clock`` is injectable so that tests need not wait."""

    def __init__(
        self, limits: Limits | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits or Limits()
        self._clock = clock
        self._per_s = self.limits.per_minute / 60.0
        self._global_per_s = self.limits.global_per_minute / 60.0
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._everyone = _Bucket(float(self.limits.global_burst), clock())
        self._trusted: OrderedDict[str, float] = OrderedDict()
        self.refused_total = 0
        self.failures_total = 0

    # -- the three calls an authenticating route makes -------------------------------------

    def check(self, host: str | None) -> None:
        """Raise :class:`Refused` when ``host`` may not try a key now."""
        now = self._clock()
        key = client_key(host)
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.refill(now, self.limits.burst, self._per_s)
            if bucket.tokens < 1.0:
                self._refuse(key, bucket, bucket.wait_s(self._per_s), now)
            self._end_episode_if_over(key, bucket, now)
        self._everyone.refill(now, self.limits.global_burst, self._global_per_s)
        if self._everyone.tokens < 1.0 and not self._is_trusted(key, now):
            self._refuse(EVERYONE, self._everyone, self._everyone.wait_s(self._global_per_s), now)
        self._end_episode_if_over(EVERYONE, self._everyone, now)

    def failed(self, host: str | None) -> None:
        """``host`` showed a wrong key (or an unknown session)."""
        now = self._clock()
        key = client_key(host)
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket(float(self.limits.burst), now)
        bucket.refill(now, self.limits.burst, self._per_s)
        bucket.tokens = max(0.0, bucket.tokens - 1.0)
        self._buckets[key] = bucket  # most recently failed last
        self._everyone.refill(now, self.limits.global_burst, self._global_per_s)
        self._everyone.tokens = max(0.0, self._everyone.tokens - 1.0)
        self.failures_total += 1
        self._forget_old(now)

    def refund(self, host: str | None) -> None:
        """A try charged with :meth:`failed` before its key was checked turned out right."""
        now = self._clock()
        bucket = self._buckets.get(client_key(host))
        if bucket is not None:
            bucket.refill(now, self.limits.burst, self._per_s)
            bucket.tokens = min(float(self.limits.burst), bucket.tokens + 1.0)
        self._everyone.refill(now, self.limits.global_burst, self._global_per_s)
        self._everyone.tokens = min(float(self.limits.global_burst), self._everyone.tokens + 1.0)
        self.failures_total = max(0, self.failures_total - 1)
        self.succeeded(host)

    def succeeded(self, host: str | None) -> None:
        """``host`` showed a valid key: it keeps working while everyone else is throttled."""
        key = client_key(host)
        self._trusted.pop(key, None)
        self._trusted[key] = self._clock()
        while len(self._trusted) > MAX_TRUSTED:
            self._trusted.popitem(last=False)

    @property
    def tracked(self) -> int:
        """How many addresses' failures are remembered."""
        return len(self._buckets)

    # -- inside ----------------------------------------------------------------------------

    def _is_trusted(self, key: str, now: float) -> bool:
        seen = self._trusted.get(key)
        return seen is not None and now - seen <= self.limits.trusted_s

    def _refuse(self, key: str, bucket: _Bucket, wait_s: float, now: float) -> None:
        retry_after = max(1, math.ceil(wait_s))
        if bucket.episode_refused == 0:
            bucket.episode_started = now
            if key == EVERYONE:
                log.warning(
                    "too many wrong keys from many addresses: refusing addresses that have "
                    "not shown a valid key lately",
                    retry_after_s=retry_after,
                )
            else:
                log.warning(
                    "too many wrong keys from one address: refusing it",
                    client=key,
                    retry_after_s=retry_after,
                )
        bucket.episode_refused += 1
        self.refused_total += 1
        who = "from your address" if key != EVERYONE else "from many addresses"
        raise Refused(
            retry_after,
            f"Too many wrong keys {who}: try again in {retry_after} s",
        )

    def _end_episode_if_over(self, key: str, bucket: _Bucket, now: float) -> None:
        capacity = self.limits.burst if key != EVERYONE else self.limits.global_burst
        if bucket.episode_refused and bucket.tokens >= capacity:
            log.info(
                "wrong-key throttling over",
                client=key,
                refused=bucket.episode_refused,
                lasted_s=round(now - bucket.episode_started, 1),
            )
            bucket.episode_refused = 0

    def _forget_old(self, now: float) -> None:
        """Keep memory bounded: drop buckets that have refilled, then the oldest."""
        while self._buckets and len(self._buckets) > MAX_TRACKED:
            self._buckets.popitem(last=False)
        oldest_key = next(iter(self._buckets), None)
        if oldest_key is not None:
            oldest = self._buckets[oldest_key]
            oldest.refill(now, self.limits.burst, self._per_s)
            if oldest.tokens >= self.limits.burst and not oldest.episode_refused:
                del self._buckets[oldest_key]


# -- what routes call ----------------------------------------------------------------------


def _of(request: Request) -> Throttle:
    throttle: Throttle = request.app.state.runtime.throttle
    return throttle


def peer(request: Request) -> str | None:
    return request.client.host if request.client else None


def refuse_if_throttled(request: Request) -> None:
    """429 with Courier's body and ``Retry-After`` when the client may not try a key now."""
    try:
        _of(request).check(peer(request))
    except Refused as refused:
        raise HTTPException(
            status_code=429,
            detail=refused.message,
            headers={"Retry-After": str(refused.retry_after_s)},
        ) from None


def note_failure(request: Request) -> None:
    _of(request).failed(peer(request))


def note_success(request: Request) -> None:
    _of(request).succeeded(peer(request))


def charge_try(request: Request) -> None:
    """Count a key as wrong before it is checked (the check awaits the database, and
    concurrent guesses must not all pass :func:`refuse_if_throttled` meanwhile); a right one
    is given back with :func:`refund_try`."""
    _of(request).failed(peer(request))


def refund_try(request: Request) -> None:
    _of(request).refund(peer(request))
