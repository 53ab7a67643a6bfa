"""Faults of the Messages API, switched on at start or at run time.

One random draw per request picks at most one fault: the rates of 500, 503, 429 and 420 are
laid end to end, then the drop rate ("accepted, then the connection dropped"). Latency and
the account-not-activated mode apply to every request. A seed makes the draws repeatable.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

from tidings.sandbox.errors import MailgunError
from tidings.sandbox.settings import FAULT_STATUSES, FaultSettings

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_KEYS = {"status_rates", "drop_rate", "latency_ms", "account_disabled", "retry_after_s", "seed"}

DROP = "drop"


def rfc2822_utc(epoch: float) -> str:
    """``Mon, 25 Aug 2025 07:00:31 UTC``, as Mailgun writes it, whatever the locale."""
    t = time.gmtime(epoch)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} UTC"
    )


def parse_faults(body: Any) -> FaultSettings:
    """Check a faults body (every key optional, ``{}`` clears all); ValueError says why."""
    if not isinstance(body, dict):
        raise ValueError("faults must be a JSON object")
    unknown = set(body) - _KEYS
    if unknown:
        raise ValueError(f"unknown fault keys: {', '.join(sorted(unknown))}")
    rates_in = body.get("status_rates", {})
    if not isinstance(rates_in, dict):
        raise ValueError("status_rates must be an object")
    rates: dict[str, float] = {}
    for code, rate in rates_in.items():
        if str(code) not in FAULT_STATUSES:
            raise ValueError(f"status_rates: {code} is not one of {', '.join(FAULT_STATUSES)}")
        rates[str(code)] = _rate(rate, f"status_rates.{code}")
    drop_rate = _rate(body.get("drop_rate", 0), "drop_rate")
    if sum(rates.values()) + drop_rate > 1.0 + 1e-9:
        raise ValueError("status_rates and drop_rate add up to more than 1")
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise ValueError("seed must be an integer or null")
    account_disabled = body.get("account_disabled", False)
    if not isinstance(account_disabled, bool):
        raise ValueError("account_disabled must be true or false")
    return FaultSettings(
        status_rates=rates,
        drop_rate=drop_rate,
        latency_ms=_number(body.get("latency_ms", 0), "latency_ms"),
        account_disabled=account_disabled,
        retry_after_s=_number(body.get("retry_after_s", 2), "retry_after_s"),
        seed=seed,
    )


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} must be a number >= 0")
    return float(value)


def _rate(value: Any, name: str) -> float:
    number = _number(value, name)
    if number > 1:
        raise ValueError(f"{name} must be between 0 and 1")
    return number


class FaultInjector:
    """Decides, request by request, which fault (if any) the Messages API shows."""

    def __init__(self, settings: FaultSettings, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.settings = settings
        self._rng = random.Random(settings.seed)
        self._active = self._any_active()

    def configure(self, settings: FaultSettings) -> None:
        self.settings = settings
        self._rng = random.Random(settings.seed)
        self._active = self._any_active()

    def _any_active(self) -> bool:
        s = self.settings
        return bool(
            s.latency_ms or s.account_disabled or s.drop_rate or any(s.status_rates.values())
        )

    async def before_send(self, domain: str) -> str | None:
        """Sleep, refuse with a MailgunError, or return DROP; None means "behave"."""
        if not self._active:
            return None
        s = self.settings
        if s.latency_ms:
            await asyncio.sleep(s.latency_ms / 1000)
        if s.account_disabled:
            raise MailgunError(
                400,
                f"Domain {domain} is not allowed to send: Please activate your Mailgun account. "
                "Check your inbox or log in to your control panel to resend the activation email.",
            )
        draw = self._rng.random()
        for code in FAULT_STATUSES:
            rate = s.status_rates.get(code, 0.0)
            if draw < rate:
                raise self._error(int(code), domain)
            draw -= rate
        if draw < s.drop_rate:
            return DROP
        return None

    def _error(self, status: int, domain: str) -> MailgunError:
        if status == 500:
            return MailgunError(500, "Internal Server Error")
        if status == 503:
            return MailgunError(503, "Service Unavailable")
        retry_after = self.settings.retry_after_s
        until = self._clock() + retry_after
        message = (
            f"Domain {domain} is not allowed to send: recipient limit exceeded, "
            f"try again after {rfc2822_utc(until)}"
        )
        headers: dict[str, str] = {}
        if status == 429:
            # Which header Mailgun sends is unconfirmed: send both.
            headers = {
                "Retry-After": str(max(1, round(retry_after))),
                "X-RateLimit-Reset": str(int(until)),
            }
        return MailgunError(status, message, headers)
