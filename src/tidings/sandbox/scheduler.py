"""Run callbacks later, on the app's event loop, from one timer.

Thousands of messages a second each schedule their next lifecycle step; a heap and a single
``loop.call_at`` handle cost far less than a task or timer per message.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Entry = tuple[float, int, Callable[..., None], tuple[Any, ...]]


class Scheduler:
    """A heap of due callbacks served by one timer handle on the running loop."""

    def __init__(self) -> None:
        self._heap: list[Entry] = []
        self._order = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = float("inf")

    @property
    def running(self) -> bool:
        return self._loop is not None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self._heap:
            self._arm(self._heap[0][0])

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_due = float("inf")
        self._loop = None
        self._heap.clear()

    def clear(self) -> None:
        self._heap.clear()

    def call_later(self, delay: float, callback: Callable[..., None], *args: Any) -> None:
        if self._loop is None:
            self.start()
        assert self._loop is not None
        due = self._loop.time() + max(delay, 0.0)
        heapq.heappush(self._heap, (due, next(self._order), callback, args))
        if due < self._timer_due:
            self._arm(due)

    def _arm(self, due: float) -> None:
        assert self._loop is not None
        if self._timer is not None:
            self._timer.cancel()
        self._timer_due = due
        self._timer = self._loop.call_at(due, self._fire)

    def _fire(self) -> None:
        assert self._loop is not None
        self._timer = None
        self._timer_due = float("inf")
        now = self._loop.time()
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, callback, args = heapq.heappop(heap)
            try:
                callback(*args)
            except Exception:  # one broken step must not stop every other message's life
                log.exception("sandbox: scheduled step failed")
        if heap and self._loop is not None:
            self._arm(heap[0][0])
