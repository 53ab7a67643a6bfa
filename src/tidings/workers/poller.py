"""The poller: reads Mailgun's Events API by time window and applies what it finds.

See DESIGN.md, "Polling by window, not by message". One logical poller per (base URL,
domain), however many provider configurations share that pair: Mailgun's event log is per
domain, so reading it once serves them all.

Per group, each cycle (every ``poll_interval_s`` while something is outstanding):

* **Trust pass** (at the slower trust cadence, see :func:`trust_every`): read the closed
  window ``[settled_until - overlap, now - poll_trust_s]``, ascending, following ``next``
  until an empty page, apply every event, then persist ``settled_until = now - trust``.
  Everything in that window was older than the trust threshold when read, so by Mailgun's
  recipe it is complete: after a restart nothing before ``settled_until`` needs reading.
* **Tail pass** (every cycle): continue from the ``next`` link of the newest page read,
  kept in memory, so a cycle does not re-read what it read a moment ago. Mailgun's ``next``
  for an ascending window with no ``end`` keeps returning events as they arrive. A page
  shorter than the limit means "nothing more visible yet": the cycle stops there rather than
  spend a request on the empty page, and the next cycle asks the same ``next`` link again.
  With no tail yet (start, or after idling) it starts at ``settled_until - overlap``.

So every event is read about twice (fresh, then trusted), at about one request per 300
events, never one per message. Applying an event twice is harmless: the history is keyed by
the event id and the status is a merge.

**Outstanding** (poll only then, otherwise no request at all): messages sent through the
domain within ``poll_engagement_window_s`` whose status an event can still change — SENT,
DELIVERED or OPENED (opens, clicks, complaints, unsubscribes and late bounces come after
delivery). UNDELIVERABLE and CLICKED are final. A SENT message older than the window is
given up on too: Mailgun keeps events for days, not forever, and retries a delivery for 8 h.
Nothing before the earliest outstanding message's send can matter, so ``settled_until``
jumps forward to it (after idling, a cycle never re-reads weeks of unrelated events).

Only the events that can change a message are asked for (``event`` filter): ``accepted``
is left out — the dispatcher already knows a message was sent — which saves about a third
of the pages.

Modes (the providers' ``polling`` setting, grouped: any ``on`` wins, else any ``auto``,
else ``off``): ``off`` never requests; ``auto`` stops once signed webhooks for the domain
have flowed for ``poll_auto_after_s`` and starts again when none has come for
``poll_auto_quiet_s`` (the webhook route records them with
:func:`tidings.store.poll_cursors.note_webhook`), reading from where it stopped.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from pydantic import ValidationError
from yarl import URL

from tidings.ids import new_id
from tidings.providers.base import (
    EventFeed,
    EventParseError,
    EventsPage,
    ProviderConfig,
    ProviderError,
)
from tidings.providers.registry import Providers, UnknownProvider
from tidings.runtime import Runtime
from tidings.store import poll_cursors, providers
from tidings.store.clock import utcnow
from tidings.store.events import record_event
from tidings.workers.supervise import Episode, Supervised, bounded, wait_or_stop

log = structlog.get_logger("tidings.poller")

# Every event kind that can change a message's status, history or suppression.
MAX_BACKOFF_S = 300.0
SHUTDOWN_DB_S = 5.0


def trust_every(interval_s: float, trust_s: float) -> float:
    """How often the trust pass runs: a quarter of the trust threshold (so ``settled_until``
    lags now by at most 1.25 × the threshold), never more often than a cycle."""
    return max(interval_s, trust_s / 4)


@dataclass(frozen=True, slots=True)
class Group:
    """Every provider configuration that shares one (base URL, domain)."""

    base_url: str
    domain: str
    mode: str  # on | off | auto
    provider: str  # the provider's key
    feed: EventFeed  # the provider's event log
    config: ProviderConfig  # the one polling uses: the first whose own mode is the group's
    provider_id: str  # that configuration's id, named in the history of what it reads
    provider_ids: tuple[str, ...]

    @property
    def key(self) -> str:
        return poll_cursors.cursor_key(self.base_url, self.domain)

    @property
    def where(self) -> str:
        """For logs: the host without any credentials, and the domain."""
        return f"{URL(self.base_url).origin()} {self.domain}"


def group_providers(stored: Sequence[providers.StoredProvider], live: Providers) -> list[Group]:
    """Group the configurations of every provider with an event log by (target, domain),
    and decide each group's mode."""
    found: dict[tuple[str, str, str], list[tuple[str, Any, EventFeed]]] = {}
    for provider in stored:
        try:
            impl = live.get(provider.provider)
        except UnknownProvider:
            continue
        if impl.events is None:
            continue  # no event log (SMTP): its messages end at SENT
        try:
            settings = impl.parse_settings(provider.settings)
        except ValidationError:
            continue  # the Providers API refuses these; a hand-edited row is not polled
        config = settings.to_config()
        if not config.domain:
            continue
        found.setdefault((provider.provider, config.target, config.domain), []).append(
            (provider.id, settings, impl.events)
        )
    groups: list[Group] = []
    for (key, base_url, domain), members in found.items():
        modes = {settings.polling_mode() for _, settings, _ in members}
        mode = "on" if "on" in modes else "auto" if "auto" in modes else "off"
        chosen_id, chosen, feed = next(
            ((i, s, f) for i, s, f in members if s.polling_mode() == mode), members[0]
        )
        groups.append(
            Group(
                base_url=base_url,
                domain=domain,
                mode=mode,
                provider=key,
                feed=feed,
                config=chosen.to_config(),
                provider_id=chosen_id,
                provider_ids=tuple(pid for pid, _, _ in members),
            )
        )
    return groups


@dataclass(slots=True)
class _State:
    """What one group's poller keeps in memory (lost on restart, by design)."""

    state: str = ""  # polling | idle | off | webhooks: for logging changes
    tail_url: str | None = None  # the newest page's `next`
    last_trust: float = -math.inf  # monotonic time of the last trust pass
    next_due: float = 0.0  # monotonic time of the next cycle
    failures: int = 0
    episode: Episode | None = None  # logs a run of failed requests once

    def forget_tail(self) -> None:
        self.tail_url = None


@dataclass(slots=True)
class CycleReport:
    requests: int = 0
    events: int = 0
    new: int = 0
    changed: int = 0
    trust_pass: bool = False
    settled_until: datetime | None = None


class Poller:
    """Polls every (base URL, domain) that has something outstanding. See the module doc."""

    def __init__(self, rt: Runtime, providers: Providers) -> None:
        self.rt = rt
        self.providers = providers
        self.settings = rt.settings
        self._states: dict[str, _State] = {}
        self.owner = new_id("pol_")
        self._supervised: Supervised | None = None  # while run() runs

    # -- the loop -----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        log.info("poller started", interval_s=self.settings.poll_interval_s)
        settings = self.settings

        async def step() -> None:
            await wait_or_stop(stop, await self.tick(stop))

        # A healthy tick reads the database, then may page through Mailgun's events (each
        # request bounded by the client's timeouts), then waits at most one interval.
        cadence = 2 * settings.poll_interval_s + settings.send_timeout_s + 10
        self._supervised = Supervised(
            self.rt, "poller", cadence_s=cadence, what="polling (the database)"
        )
        try:
            await self._supervised.run(step, stop)
        finally:

            async def release() -> None:
                async with self.rt.db.write() as conn:
                    await poll_cursors.release_leases(conn, self.owner)

            await bounded(release(), SHUTDOWN_DB_S, "giving back the poller's leases")
            log.info("poller stopped")

    async def tick(self, stop: asyncio.Event | None = None) -> float:
        """Look at every group once, polling those that are due. Returns how long to wait
        before the next tick: at most one interval, so new outstanding messages are seen
        within one interval (the check is a database query, not a request to Mailgun)."""
        async with self.rt.db.read() as conn:
            groups = group_providers(await providers.list_all(conn), self.providers)
        if self._supervised is not None:
            # The database answers: say so now, not after a long first cycle of events.
            self._supervised.ok()
        seen = {group.key for group in groups}
        for key in [k for k in self._states if k not in seen]:
            del self._states[key]  # a configuration was removed
        interval = self.settings.poll_interval_s
        wait = interval
        for group in groups:
            if stop is not None and stop.is_set():
                break
            state = self._states.setdefault(group.key, _State())
            await self._tick_group(group, state)
            if state.state == "polling":
                wait = min(wait, max(0.0, state.next_due - time.monotonic()))
        return wait

    async def _tick_group(self, group: Group, state: _State) -> None:
        settings = self.settings
        now = utcnow()
        if group.mode == "off":
            self._become(group, state, "off", "polling is off for this domain")
            return
        async with self.rt.db.read() as conn:
            cursor = await poll_cursors.get(conn, group.base_url, group.domain)
            pending = await poll_cursors.outstanding(
                conn,
                group.domain,
                since=now - timedelta(seconds=settings.poll_engagement_window_s),
            )
        if (
            group.mode == "auto"
            and cursor is not None
            and cursor.webhooks_flowing(
                now, after_s=settings.poll_auto_after_s, quiet_s=settings.poll_auto_quiet_s
            )
        ):
            self._become(
                group,
                state,
                "webhooks",
                "auto: signed webhooks are flowing, polling paused",
                webhooks_since=cursor.webhooks_since.isoformat() if cursor.webhooks_since else None,
            )
            return
        if pending.count == 0 or pending.earliest_sent is None:
            self._become(group, state, "idle", "nothing outstanding, polling idle")
            return
        self._become(
            group,
            state,
            "polling",
            "polling" if group.mode == "on" else "auto: no steady webhooks, polling",
            outstanding=pending.count,
        )
        if time.monotonic() < state.next_due:
            return
        # With several workers on one database, one of them polls a domain at a time.
        lease_s = max(60.0, 3 * settings.poll_interval_s)
        async with self.rt.db.write() as conn:
            mine = await poll_cursors.take_lease(
                conn, group.base_url, group.domain, owner=self.owner, ttl_s=lease_s
            )
        if not mine:
            state.forget_tail()  # whoever polls now has the newer position
            state.next_due = time.monotonic() + settings.poll_interval_s
            return
        try:
            report = await self.cycle(group, state, pending.earliest_sent, cursor)
        except ProviderError as exc:
            if state.episode is None:
                state.episode = Episode(
                    "polling the provider's events",
                    "retrying with backoff (doubling from the polling interval, at most "
                    f"{MAX_BACKOFF_S:g} s)",
                    where=group.where,
                )
            state.episode.failed(exc)
            state.failures += 1
            delay = min(MAX_BACKOFF_S, settings.poll_interval_s * 2**state.failures)
            state.next_due = time.monotonic() + max(delay, settings.poll_interval_s)
            log.debug("polling failed", where=group.where, retry_in_s=round(delay, 1))
            return
        if state.episode is not None:
            state.episode.ok()
        state.failures = 0
        state.next_due = time.monotonic() + settings.poll_interval_s
        if report.events:
            log.debug(
                "polled",
                where=group.where,
                requests=report.requests,
                events=report.events,
                new=report.new,
                changed=report.changed,
                trust_pass=report.trust_pass,
            )

    def _become(self, group: Group, state: _State, name: str, text: str, **fields: Any) -> None:
        if name != "polling":
            # The tail is only worth keeping while polling: after a pause it would re-read
            # everything since, where settled_until (moved up to the earliest outstanding
            # message) knows better where to start.
            state.forget_tail()
        if state.state != name:
            log.info(text, where=group.where, mode=group.mode, state=name, **fields)
            state.state = name

    # -- one cycle ----------------------------------------------------------------------

    async def cycle(
        self,
        group: Group,
        state: _State,
        earliest_sent: datetime,
        cursor: poll_cursors.Cursor | None,
    ) -> CycleReport:
        """One polling cycle for ``group``: a trust pass when due, then the tail."""
        settings = self.settings
        report = CycleReport()
        now = utcnow()
        stored = cursor.settled_until if cursor is not None else poll_cursors.NEVER
        # Events about an outstanding message come after it was sent; nothing earlier
        # matters (the overlap absorbs clock skew between us and Mailgun).
        settled = max(stored, earliest_sent)
        overlap = timedelta(seconds=settings.poll_overlap_s)
        trust_edge = now - timedelta(seconds=settings.poll_trust_s)
        trust_due = state.tail_url is None or (
            time.monotonic() - state.last_trust
            >= trust_every(settings.poll_interval_s, settings.poll_trust_s)
        )
        if trust_edge > settled and trust_due:
            page = await group.feed.first_page(
                group.config,
                begin=(settled - overlap).timestamp(),
                end=trust_edge.timestamp(),
                ascending=True,
                limit=group.feed.page_limit,
            )
            report.requests += 1
            # The recipe: follow `next` until an empty page (the window is closed, so it
            # will not grow).
            while page.items:
                await self._apply(group, page, report)
                if page.next_url is None:
                    break
                page = await group.feed.next_page(group.config, page.next_url)
                report.requests += 1
            settled = trust_edge
            state.last_trust = time.monotonic()
            report.trust_pass = True
        if settled > stored:
            async with self.rt.db.write() as conn:
                await poll_cursors.advance(conn, group.base_url, group.domain, settled)
        report.settled_until = settled

        # The tail: from the newest page's `next`, else from just before settled_until.
        if state.tail_url is None:
            page = await group.feed.first_page(
                group.config,
                begin=(settled - overlap).timestamp(),
                ascending=True,
                limit=group.feed.page_limit,
            )
        else:
            page = await group.feed.next_page(group.config, state.tail_url)
        report.requests += 1
        while True:
            await self._apply(group, page, report)
            if page.next_url is not None:
                state.tail_url = page.next_url
            if len(page.items) < group.feed.page_limit or page.next_url is None:
                break
            page = await group.feed.next_page(group.config, page.next_url)
            report.requests += 1
        return report

    async def _apply(self, group: Group, page: EventsPage, report: CycleReport) -> None:
        """Apply one page's events in one transaction."""
        if not page.items:
            return
        async with self.rt.db.write() as conn:
            for item in page.items:
                try:
                    event = group.feed.parse(item)
                except EventParseError as exc:
                    log.warning(
                        "skipping an event Tidings cannot read", where=group.where, error=str(exc)
                    )
                    continue
                self.rt.metrics.events.labels(event.kind.value, "poll").inc()
                recorded = await record_event(
                    conn,
                    event,
                    source="poll",
                    provider_id=group.provider_id,
                    provider_key=group.provider,
                )
                report.events += 1
                report.new += int(recorded.new)
                report.changed += int(recorded.status_changed)
