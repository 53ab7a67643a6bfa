"""The notifier: posts status changes to customers' endpoints (Courier's outbound webhooks).

``status_feed.publish`` queues one ``status_deliveries`` row per enabled endpoint in the same
transaction that changes a message's status. The notifier claims due rows, POSTs each body
as JSON with a ``courier-signature`` header, and records the answer:

* 2xx → delivered.
* Anything else (another status, a redirect, a timeout, a refused connection) → retried with
  exponential backoff and jitter, from ``notify_retry_base_s`` doubling up to
  ``notify_retry_max_s``, until the endpoint answers 2xx or the give-up horizon
  (``GIVE_UP_AFTER``, 3 days after the status change, as Courier and most webhook senders do)
  has passed; a delivery given up keeps its last error, with "gave up" in front, for
  ``GET /webhooks/endpoints/{id}/deliveries``.
* For one endpoint and one message, statuses go out in order: a newer one waits while an
  older one is still pending (see ``store.status_endpoints.claim_due``).

The queue lives in the database and claims are leases, so any number of notifiers (in
``tidings serve`` and ``tidings worker`` processes) share it safely; they poll it at a short
interval, which is what makes a commit in another process visible promptly.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import structlog

from tidings import __version__
from tidings.domain.network import answer_excerpt
from tidings.providers.outbound import Outbound
from tidings.runtime import Runtime
from tidings.store import status_endpoints as store
from tidings.store.clock import utcnow
from tidings.workers.supervise import Episode, bounded, is_fault, supervise, wait_or_stop

log = structlog.get_logger("tidings.notifier")
# How long shutdown waits for the database to take back the leases (it may be down).
SHUTDOWN_DB_S = 5.0

GIVE_UP_AFTER = timedelta(days=3)
IDLE_S = 0.2
CONCURRENCY = 32
# How much of an endpoint's answer is read; last_error keeps a short sanitised excerpt of it.
ANSWER_EXCERPT = 2000


def signature_header(secret: str, timestamp_ms: int, raw_body: bytes) -> str:
    """Courier's ``courier-signature``: ``t=<ms>,signature=<hex HMAC-SHA256(secret, "t.body")>``."""
    signed = f"{timestamp_ms}.".encode() + raw_body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp_ms},signature={digest}"


def backoff_s(attempts: int, base: float, maximum: float, rng: random.Random) -> float:
    """Delay before the next try after ``attempts`` failed ones: the exponential ceiling
    ``base * 2**(attempts-1)`` (capped at ``maximum``), half fixed and half random, so that
    the deliveries of an endpoint that was down do not all come back at the same instant."""
    ceiling: float = min(maximum, base * 2.0 ** min(max(attempts - 1, 0), 60))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


def encode_body(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


class Notifier:
    """Claims due status deliveries and posts them; see the module docstring."""

    def __init__(
        self,
        rt: Runtime,
        *,
        concurrency: int = CONCURRENCY,
        idle_s: float = IDLE_S,
        give_up_after: timedelta = GIVE_UP_AFTER,
    ) -> None:
        self.rt = rt
        self.settings = rt.settings
        self.idle_s = idle_s
        self.give_up_after = give_up_after
        # A lease outlives the longest attempt, so a live notifier never loses its claim.
        self.lease_s = self.settings.notify_timeout_s + 30.0
        self._slots = asyncio.Semaphore(concurrency)
        self._free = concurrency  # our own count of free slots
        self._concurrency = concurrency
        self._record_faults = Episode(
            "recording status deliveries",
            "each is tried again when its lease runs out",
            loop="notifier",
        )
        self._inflight: dict[asyncio.Task[None], int] = {}
        self._rng = random.Random()
        self._session: aiohttp.ClientSession | None = None

    async def run(self, stop: asyncio.Event) -> None:
        timeout = aiohttp.ClientTimeout(total=self.settings.notify_timeout_s)
        # Endpoints came through the API: the outbound network policy guards every connection.
        connector = Outbound(self.rt.network_policy(), self.settings.dns_server).connector(
            first_hop=None, limit=self._concurrency, limit_per_host=8
        )
        async with aiohttp.ClientSession(
            timeout=timeout,
            connector=connector,
            headers={"user-agent": f"Tidings/{__version__}"},
        ) as session:
            self._session = session
            log.info("notifier started")
            try:
                await self._loop(stop)
            finally:
                await self._shutdown()
                self._session = None
                log.info("notifier stopped")

    async def _loop(self, stop: asyncio.Event) -> None:
        async def step() -> None:
            claimed = await self._claim()
            for delivery in claimed:
                await self._slots.acquire()
                self._free -= 1
                task = asyncio.create_task(self._guarded(delivery))
                self._inflight[task] = delivery.id
                task.add_done_callback(self._done)
            if not claimed:
                await self._idle(stop)

        await supervise(
            self.rt,
            "notifier",
            step,
            stop,
            cadence_s=self.idle_s,
            what="status webhooks (claiming deliveries)",
        )

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.pop(task, None)
        self._free += 1
        self._slots.release()

    async def _claim(self) -> list[store.Claimed]:
        free = self._free  # claim no more than there are free slots to work on
        if free <= 0:
            await asyncio.sleep(0.01)
            return []
        async with self.rt.db.write() as conn:
            return await store.claim_due(conn, limit=free, lease_s=self.lease_s)

    async def _idle(self, stop: asyncio.Event) -> None:
        timeout = self.idle_s
        async with self.rt.db.read() as conn:
            due = await store.next_due_at(conn)
        if due is not None:
            timeout = max(0.0, min(timeout, (due - utcnow()).total_seconds()))
        await self._wait(stop, timeout)

    @staticmethod
    async def _wait(stop: asyncio.Event, seconds: float) -> None:
        await wait_or_stop(stop, seconds)

    async def _shutdown(self) -> None:
        """Let attempts under way finish (bounded), then give back the leases of the rest."""
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=self.settings.notify_timeout_s + 1)
        unfinished = list(self._inflight.items())
        for task, _ in unfinished:
            task.cancel()
        if unfinished:
            await asyncio.gather(*(t for t, _ in unfinished), return_exceptions=True)

            async def release() -> None:
                async with self.rt.db.write() as conn:
                    await store.release(conn, [delivery_id for _, delivery_id in unfinished])

            # Bounded: with the database down the leases run out by themselves.
            await bounded(release(), SHUTDOWN_DB_S, "giving back status deliveries")

    # -- one delivery -------------------------------------------------------------------

    async def _guarded(self, delivery: store.Claimed) -> None:
        try:
            await self.deliver(delivery)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Its lease runs out and it is tried again; nothing is lost.
            if is_fault(exc):
                self._record_faults.failed(exc)  # once for an outage, not once per delivery
                return
            log.exception(
                "status delivery failed unexpectedly",
                delivery_id=delivery.id,
                endpoint_id=delivery.endpoint_id,
            )
        else:
            self._record_faults.ok()

    async def deliver(self, delivery: store.Claimed) -> None:
        """Post one delivery and record the outcome."""
        status, error = await self._post(delivery)
        async with self.rt.db.write() as conn:
            if error is None:
                assert status is not None
                await store.mark_delivered(conn, delivery.id, status=status)
                return
            now = utcnow()
            delay = backoff_s(
                delivery.attempts,
                self.settings.notify_retry_base_s,
                self.settings.notify_retry_max_s,
                self._rng,
            )
            retry_at: Any = now + timedelta(seconds=delay)
            if retry_at > delivery.created + self.give_up_after:
                retry_at = None
                error = (
                    f"gave up after {delivery.attempts} attempt(s) over "
                    f"{self.give_up_after}: {error}"
                )
            await store.mark_failed(
                conn, delivery.id, status=status, error=error, retry_at=retry_at
            )
        # The endpoint's URL may carry credentials, so only its host is logged; never the secret.
        log_fn = log.warning if retry_at is None else log.info
        log_fn(
            "status delivery gave up" if retry_at is None else "status delivery will be retried",
            delivery_id=delivery.id,
            endpoint_id=delivery.endpoint_id,
            host=urlsplit(delivery.url).hostname,
            attempts=delivery.attempts,
            status=status,
            error=error,
        )

    async def _post(self, delivery: store.Claimed) -> tuple[int | None, str | None]:
        """(HTTP status, None) when the endpoint took it, else (status or None, why not)."""
        assert self._session is not None
        raw = encode_body(delivery.body)
        headers = {"content-type": "application/json"}
        if delivery.secret:
            headers["courier-signature"] = signature_header(
                delivery.secret, int(time.time() * 1000), raw
            )
        try:
            # Redirects are not followed: the body is signed for the URL the customer gave.
            async with self._session.post(
                delivery.url, data=raw, headers=headers, allow_redirects=False
            ) as response:
                excerpt = await response.content.read(ANSWER_EXCERPT)
                if 200 <= response.status < 300:
                    return response.status, None
                text = answer_excerpt(excerpt)
                return response.status, f"HTTP {response.status}" + (f": {text}" if text else "")
        except TimeoutError:
            return None, f"no answer within {self.settings.notify_timeout_s:g} s"
        except aiohttp.ClientError as exc:
            return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except ValueError as exc:  # a URL aiohttp cannot use
            return None, f"invalid URL: {exc}"
