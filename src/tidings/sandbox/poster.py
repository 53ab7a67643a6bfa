"""Posting signed webhooks to registered URLs, with Mailgun's retry schedule.

Each (event, URL) pair is delivered by its own background task, so the API never waits.
200 means done; 406 means never retry; any other answer, a timeout or a refused connection
is retried after 5 min, 10 min, 15 min, 1 h, 2 h and 4 h, multiplied by ``retry_scale``.
``delivered`` events are not retried, as at Mailgun.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import aiohttp

from tidings.sandbox.signing import signature_block
from tidings.sandbox.state import JSON, Store

log = logging.getLogger(__name__)

RETRY_SCHEDULE_S: tuple[float, ...] = (300, 600, 900, 3600, 7200, 14400)
NOT_RETRIED = frozenset({"delivered"})


def webhook_kind(item: JSON) -> str:
    """The webhook name an event is posted under."""
    event = str(item["event"])
    if event == "failed":
        return "permanent_fail" if item.get("severity") == "permanent" else "temporary_fail"
    return event


class WebhookPoster:
    """Owns the HTTP session and the delivery tasks of one sandbox."""

    def __init__(self, store: Store, signing_key: str, retry_scale: float, timeout: float) -> None:
        self._store = store
        self.signing_key = signing_key
        self.retry_scale = retry_scale
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # The first attempt of the latest event per (message, URL): a message's events are
        # first posted in the order they happened, as a receiver watching one message sees
        # at Mailgun (retries may still arrive late, as they do there).
        self._latest: dict[tuple[str, str], asyncio.Event] = {}

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def post(self, domain: str, item: JSON) -> None:
        """Queue ``item`` for every URL registered for its kind on ``domain`` or the account."""
        kind = webhook_kind(item)
        urls = self._store.webhook_urls(domain, kind)
        if not urls:
            return
        retry = kind not in NOT_RETRIED
        message_id = str(((item.get("message") or {}).get("headers") or {}).get("message-id", ""))
        for url in urls:
            key = (message_id, url)
            previous = self._latest.get(key)
            first_done = asyncio.Event()
            self._latest[key] = first_done
            task = asyncio.get_running_loop().create_task(
                self._deliver(url, item, retry, previous, first_done)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _deliver(
        self,
        url: str,
        item: JSON,
        retry: bool,
        previous: asyncio.Event | None,
        first_done: asyncio.Event,
    ) -> None:
        if previous is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(previous.wait(), timeout=self._timeout)
        for attempt in range(len(RETRY_SCHEDULE_S) + 1):
            answer = await self._attempt(url, item)
            if attempt == 0:
                first_done.set()
                key = (
                    str(((item.get("message") or {}).get("headers") or {}).get("message-id", "")),
                    url,
                )
                if self._latest.get(key) is first_done:
                    del self._latest[key]
            if answer in ("200", "406") or not retry or attempt == len(RETRY_SCHEDULE_S):
                return
            await asyncio.sleep(RETRY_SCHEDULE_S[attempt] * self.retry_scale)

    async def _attempt(self, url: str, item: JSON) -> str:
        body = json.dumps({"signature": signature_block(self.signing_key), "event-data": item})
        try:
            async with self._get_session().post(
                url, data=body.encode(), headers={"Content-Type": "application/json"}
            ) as response:
                await response.read()
                answer = str(response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("sandbox: webhook %s failed: %r", url, exc)
            answer = "error"
        self._store.count_webhook(answer)
        return answer

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                connector=aiohttp.TCPConnector(limit=64),
                headers={"User-Agent": "mailgun/treq-16.12.0"},
            )
        return self._session
