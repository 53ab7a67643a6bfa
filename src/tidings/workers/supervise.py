"""Supervised loops: background work that outlives database and network faults.

A loop is a ``step`` run over and over until ``stop``. When a step fails, the loop waits
(capped exponential backoff with jitter, cut short by ``stop``) and tries again, forever: a
database that is down for a minute costs a minute of work, never the process. A run of
failures is one *episode*, logged twice whatever its length: a warning at the first failure
saying what failed and what the loop will do, and an info line "… resumed after N s" at the
first success after it. Each loop's health (last success, failing since) is kept in the
process's :class:`~tidings.runtime.Runtime` for ``/health/ready`` and exported as Prometheus
metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import structlog

from tidings.runtime import LoopHealth, Runtime
from tidings.store.database import is_database_error

log = structlog.get_logger("tidings.loops")

Step = Callable[[], Awaitable[Any]]


def is_fault(exc: BaseException) -> bool:
    """A failure of something outside the process (database, network), as opposed to a bug."""
    return isinstance(exc, OSError | TimeoutError | aiohttp.ClientError) or is_database_error(exc)


def describe(exc: BaseException) -> str:
    """One short line naming the error. Only the first line of its text: database errors
    go on with the statement and its parameters, which may carry message data."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if len(text) > 200:
        text = text[:200] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Backoff:
    """Capped exponential backoff with jitter: the ceiling ``base * 2**(n-1)`` (at most
    ``maximum``) after the n-th failure in a row, half of it fixed and half random, so that
    the workers that lost the database do not all come back at the same instant."""

    def __init__(self, base: float, maximum: float, rng: random.Random | None = None) -> None:
        self.base = base
        self.maximum = max(base, maximum)
        self._rng = rng or random.Random()

    def delay(self, failures: int) -> float:
        ceiling = min(self.maximum, self.base * 2.0 ** min(max(failures - 1, 0), 60))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)


class Episode:
    """Logs a run of failures once: a warning at its first failure (what failed, what will
    happen), an info line when it ends. Everything in between goes to debug."""

    def __init__(self, what: str, will: str, **fields: Any) -> None:
        self.what = what
        self.will = will
        self.fields = fields
        self.failures = 0
        self.since: float | None = None  # monotonic time of the first failure
        self.last_error: str | None = None

    @property
    def failing(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException) -> None:
        self.failures += 1
        self.last_error = describe(exc)
        if self.since is not None:
            log.debug(f"{self.what} still failing", error=self.last_error, **self.fields)
            return
        self.since = time.monotonic()
        # A fault outside the process says enough in one line; a bug needs its traceback.
        log.warning(
            f"{self.what} failed; {self.will}",
            error=self.last_error,
            exc_info=not is_fault(exc),
            **self.fields,
        )

    def reset(self) -> None:
        """Forget the episode without logging its end."""
        self.since = None
        self.failures = 0

    def ok(self) -> None:
        if self.since is None:
            return
        seconds = time.monotonic() - self.since
        log.info(
            f"{self.what} resumed after {seconds:.1f} s",
            failures=self.failures,
            **self.fields,
        )
        self.reset()


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``stop`` is set meanwhile."""
    if seconds <= 0 or stop.is_set():
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()


class Supervised:
    """One named loop of this process: its health in the runtime, its metrics, its episodes
    and its backoff. ``cadence_s`` is the longest a healthy loop goes between two successful
    steps; it is stale (not ready) after that plus ``TIDINGS_READY_STALE_S``."""

    def __init__(self, rt: Runtime, name: str, *, cadence_s: float, what: str | None = None):
        settings = rt.settings
        self.rt = rt
        self.name = name
        self.health = LoopHealth(name=name, stale_after_s=settings.ready_stale_s + cadence_s)
        rt.loops[name] = self.health
        self.backoff = Backoff(settings.loop_backoff_base_s, settings.loop_backoff_max_s)
        self.episode = Episode(
            what or name,
            f"retrying with backoff (up to {self.backoff.maximum:g} s) until it works",
            loop=name,
        )
        self._failures = rt.metrics.loop_failures.labels(name)
        self._last_success = rt.metrics.loop_last_success.labels(name)

    def ok(self) -> None:
        now = time.time()
        self.health.last_success = now
        self._last_success.set(now)
        if self.episode.failing:
            self.episode.ok()
            self.health.failing_since = None
            self.health.failures = 0
            self.health.last_error = None

    def failed(self, exc: BaseException) -> float:
        """Count and log a failed step; returns how long to wait before the next."""
        self._failures.inc()
        self.episode.failed(exc)
        if self.health.failing_since is None:
            self.health.failing_since = time.time()
        self.health.failures = self.episode.failures
        self.health.last_error = type(exc).__name__
        return self.backoff.delay(self.episode.failures)

    async def run(self, step: Step, stop: asyncio.Event) -> None:
        """Run ``step`` until ``stop``; a failed step is retried after a backoff."""
        self.health.running = True
        try:
            while not stop.is_set():
                try:
                    await step()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    await wait_or_stop(stop, self.failed(exc))
                else:
                    self.ok()
                    # A step that had nothing to wait for must not starve the event loop.
                    await asyncio.sleep(0)
        finally:
            self.health.running = False


async def supervise(
    rt: Runtime,
    name: str,
    step: Step,
    stop: asyncio.Event,
    *,
    cadence_s: float,
    what: str | None = None,
) -> None:
    """Run ``step`` as the supervised loop ``name`` until ``stop`` (see :class:`Supervised`)."""
    await Supervised(rt, name, cadence_s=cadence_s, what=what).run(step, stop)


async def keep_running(rt: Runtime, name: str, start: Step, stop: asyncio.Event) -> None:
    """Run a whole worker (``start()`` returns when ``stop`` is set) and start it again should
    it end before that: whatever happens to one worker, the others and the process go on."""
    backoff = Backoff(rt.settings.loop_backoff_base_s, rt.settings.loop_backoff_max_s)
    episode = Episode(f"the {name}", "starting it again", loop=name)
    while not stop.is_set():
        started = time.monotonic()
        error: BaseException
        try:
            await start()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = exc
        else:
            if stop.is_set():
                return
            error = RuntimeError(f"the {name} ended by itself")
        if time.monotonic() - started > backoff.maximum:
            episode.reset()  # it ran for a while: a new episode, logged, and a quick restart
        episode.failed(error)
        await wait_or_stop(stop, backoff.delay(episode.failures))


async def bounded(work: Awaitable[Any], seconds: float, what: str) -> None:
    """Await ``work`` for at most ``seconds``; on failure or timeout log once and go on.
    For shutdown steps that must not hang or fail when the database is gone."""
    try:
        async with asyncio.timeout(seconds):
            await work
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.warning(f"{what} failed; going on without it", error=describe(exc))


async def until_done(rt: Runtime, work: Step, stop: asyncio.Event, *, what: str) -> bool:
    """Run ``work`` until it succeeds once (True), retrying with backoff, or until ``stop``
    (False; an attempt under way is cancelled). For start-up steps such as migrations."""
    backoff = Backoff(rt.settings.loop_backoff_base_s, rt.settings.loop_backoff_max_s)
    episode = Episode(what, f"retrying with backoff (up to {backoff.maximum:g} s) until it works")
    while not stop.is_set():
        attempt = asyncio.ensure_future(work())
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({attempt, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if not attempt.done():
            attempt.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await attempt
            return False
        error = attempt.exception()
        if error is None:
            episode.ok()
            return True
        episode.failed(error)
        await wait_or_stop(stop, backoff.delay(episode.failures))
    return False
