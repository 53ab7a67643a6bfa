"""The dispatcher: claims due messages, renders them, sends them, records what happened.

What to do is decided by pure functions (:mod:`tidings.workers.plan`: route, end, send,
retry, fail over); this loop reads what they need and carries out what they return.

Each message is handled under a lease. An attempt is written (and committed) before the
provider is called, and its answer after; an attempt left without an answer (a worker died,
or the connection broke after the request was written) is *in doubt*, and is looked up in
the provider's event log by the Tidings id before anything is sent again, so that a
recipient gets one email, not two.

The claimed messages of one request are handled by one task (:meth:`process_group`): each
is decided, settled, checked and rendered as it would be alone, and those whose emails
share a shape (:mod:`tidings.render.shape`, :mod:`tidings.workers.batching`) go out as one
batch call of the provider. Every one of them keeps its own attempt (committed before the
call), its own answer and its own in-doubt lookup; nothing above changes for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

import structlog

from tidings.domain.errors import ValidationError
from tidings.domain.status import (
    HistoryType,
    Reason,
    with_failure,
    with_sent,
    with_unroutable,
)
from tidings.ids import new_id
from tidings.providers import registry
from tidings.providers.base import (
    Found,
    OutcomeKind,
    OutgoingEmail,
    Provider,
    ProviderConfig,
    ProviderError,
    ProviderRefused,
    RequestError,
    SendOutcome,
)
from tidings.providers.registry import Providers
from tidings.render.email import RenderedEmail
from tidings.render.errors import RenderError
from tidings.render.message import render_facts
from tidings.render.pool import RenderFailure
from tidings.render.shape import Shape, render_with_shape
from tidings.runtime import Runtime
from tidings.store import facts as facts_codec
from tidings.store import messages as store
from tidings.store import profiles, providers, routing_strategies, suppressions
from tidings.store.clock import utcnow
from tidings.store.database import LISTEN_CHECK_S, Conn
from tidings.store.status_feed import set_facts
from tidings.workers import batching, compose, consent, plan
from tidings.workers.coalesce import Coalescer
from tidings.workers.ratelimit import Reservation, limiter_for
from tidings.workers.supervise import Episode, Supervised, bounded, is_fault

log = structlog.get_logger("tidings.dispatcher")
# How long shutdown waits for the database to take back the leases (it may be down).
SHUTDOWN_DB_S = 5.0
T = TypeVar("T")
# Renders, event-log lookups and single sends one request's task runs at once.
GROUP_CONCURRENCY = 16
# How long a dispatcher lets sends that end together (or NOTIFYs that come together) gather
# before one claim for all of them, in seconds.
GATHER_S = 0.005


@dataclass(frozen=True, slots=True)
class Batch:
    """What a claimed batch of messages needs, loaded at once."""

    rows: dict[str, Any]
    open_attempts: dict[str, Any]
    profiles: dict[str, dict[str, Any]]
    configurations: list[plan.Configuration]
    strategy: dict[str, Any] | None
    tags: dict[str, list[str]]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A message ready to be sent: decided, checked, rendered (``shape``: how it may share a
    batch call, when it was asked for and found), with what to write with its attempt."""

    row: Any
    go: plan.Go
    impl: Provider
    rendered: RenderedEmail
    shape: Shape | None
    pending: list[tuple[str, dict[str, Any]]]
    updates: dict[str, Any]
    # Headers the recipient's subscription topic adds (List-Unsubscribe), maybe none.
    headers: dict[str, str]


class Dispatcher:
    def __init__(self, rt: Runtime, providers: Providers) -> None:
        self.rt = rt
        self.providers = providers
        self.owner = new_id("wrk_")
        self.settings = rt.settings
        self.limiter = limiter_for(rt.db)
        self._inflight: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(self.settings.dispatch_concurrency)
        self._free = self.settings.dispatch_concurrency  # our own count of free slots
        # Messages this worker's tasks are working on. A lease that ran out while a large
        # batch was still being prepared could be claimed again by this same worker (the
        # same owner): such a message is never started twice.
        self._busy: set[str] = set()
        # At most this many claimed messages at once, so that batches are sent well within
        # their lease: two full batches.
        self._budget = max(2 * self.settings.mailgun_batch_size, self.settings.dispatch_batch)
        # Set whenever a slot frees up (what a dispatcher with every slot busy waits for),
        # and the free room worth a claim of its own then (see _claim).
        self._freed = asyncio.Event()
        self._enough = max(1, min(self.settings.dispatch_batch, self._free) // 4)
        # Messages a fault left leased to this worker, given back once the database answers.
        self._unreleased: set[str] = set()
        self._send_faults = Episode(
            "sending", "each message goes back in the queue", loop="dispatcher"
        )
        self._suppressions: Coalescer[str, suppressions.Suppression] = Coalescer(
            self._suppressions_of
        )

    # -- the loop -----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        log.info("dispatcher started", owner=self.owner)
        settings = self.settings
        listener: asyncio.Task[None] | None = None
        if not self.rt.db.is_sqlite:
            listening = Supervised(
                self.rt,
                "queue-listener",
                cadence_s=LISTEN_CHECK_S,
                what="listening for new work (LISTEN)",
            )

            async def listen() -> None:
                await self.rt.db.listen(store.QUEUE_CHANNEL, self.rt.wake, stop, listening.ok)

            listener = asyncio.create_task(listening.run(listen, stop), name="queue-listener")
        loop = Supervised(
            self.rt,
            "dispatcher",
            cadence_s=settings.dispatch_idle_s,
            what="dispatching (claiming due messages)",
        )
        try:
            await loop.run(lambda: self._cycle(stop), stop)
        finally:
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await listener
            await self.shutdown()

    async def _cycle(self, stop: asyncio.Event) -> None:
        """One turn: give back what a fault left leased, claim, start the sends, or idle."""
        if self._unreleased:
            await self._release(set(self._unreleased))
        if self._room() <= 0:
            await self._wait_for_room(stop)
            return
        claimed = [i for i in await self._claim() if i not in self._busy]
        if claimed:
            self._busy.update(claimed)
            try:
                batch = await self._load(claimed)
            except Exception:
                # Claimed but not started: give them back now rather than when the lease
                # runs out (or, with the database gone, as soon as it answers again).
                self._unreleased.update(claimed)
                self._busy.difference_update(claimed)
                raise
            # The messages of one request go to one task, which sends those that share a
            # shape as batch calls (see workers/batching.py); every other message alone.
            rows = batch.rows
            for unit in batching.units(
                claimed,
                lambda i: rows[i].request_id if i in rows else None,
                self.settings.mailgun_batch_size,
            ):
                await self._slots.acquire()
                self._free -= 1
                if len(unit) == 1:
                    task = asyncio.create_task(self._guarded(unit[0], batch))
                else:
                    task = asyncio.create_task(self._guarded_group(unit, batch))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
            return
        await self._idle(stop)

    async def shutdown(self) -> None:
        """Stop claiming; let in-flight sends finish (bounded), then give back the leases.
        Bounded with the database down too: the leases then run out by themselves."""
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=self.settings.send_timeout_s + 5)
        for task in list(self._inflight):
            task.cancel()

        async def release() -> None:
            async with self.rt.db.write() as conn:
                await store.release(conn, self.owner)

        await bounded(release(), SHUTDOWN_DB_S, "giving back the dispatcher's leases")
        log.info("dispatcher stopped", owner=self.owner)

    async def _release(self, ids: set[str]) -> None:
        """Back in the queue (shortly), those of ``ids`` this worker still holds."""
        async with self.rt.db.write() as conn:
            await store.release(
                conn,
                self.owner,
                ids=sorted(ids),
                retry_at=utcnow() + timedelta(seconds=self.settings.retry_base_s),
            )
        self._unreleased.difference_update(ids)

    def _room(self) -> int:
        """How many messages may be claimed now: no more than there are free slots to work
        on, nor beyond the budget of claimed messages."""
        return min(self._free, self._budget - len(self._busy))

    async def _wait_for_room(self, stop: asyncio.Event) -> None:
        """Every slot is busy: wait for one to free up (not for a NOTIFY, and without asking
        the database what is due, which could not be started anyway). Then, if only a few
        are free, a moment more for sends that end close together, so that one claim takes
        several messages rather than a round trip each."""
        with contextlib.suppress(TimeoutError):
            # Back to the loop at its cadence all the same: it reports itself alive.
            async with asyncio.timeout(self.settings.dispatch_idle_s):
                while self._room() <= 0 and not stop.is_set():
                    self._freed.clear()
                    await _first_of(self._freed.wait(), stop.wait())
        if self._room() <= 0:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(GATHER_S):
                while self._room() < self._enough and not stop.is_set():
                    self._freed.clear()
                    await _first_of(self._freed.wait(), stop.wait())

    async def _claim(self) -> list[str]:
        free, room = self._free, self._budget - len(self._busy)
        async with self.rt.db.write() as conn:
            return await store.claim_due(
                conn,
                owner=self.owner,
                limit=min(free, self.settings.dispatch_batch, room),
                lease_s=self.settings.lease_s,
                # Enough of a request's messages to fill a batch call (within the budget).
                fill_requests=min(self.settings.mailgun_batch_size, room),
            )

    async def _idle(self, stop: asyncio.Event) -> None:
        # Cleared before asking: a NOTIFY that arrives while the query runs still wakes us.
        self.rt.wakeup.clear()
        async with self.rt.db.read() as conn:
            due = await store.next_due_at(conn)
        timeout = self.settings.dispatch_idle_s
        if due is not None:
            timeout = max(0.0, min(timeout, (due - utcnow()).total_seconds()))
        if self.rt.wakeup.is_set():
            timeout = 0.0
        waiter = asyncio.create_task(self.rt.wakeup.wait())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({waiter, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for task in (waiter, stopper):
            task.cancel()
        if self.rt.wakeup.is_set() and not stop.is_set():
            # Woken by new work: every worker hears each NOTIFY (one per commit of the API),
            # so a burst is let in for a moment and claimed at once, not message by message.
            await asyncio.sleep(GATHER_S)

    async def _load(self, ids: list[str]) -> Batch:
        """Everything the claimed messages need, in a few queries for the whole batch."""
        async with self.rt.db.read() as conn:
            rows = {row.id: row for row in await store.get_many(conn, ids)}
            user_ids = sorted({r.user_id for r in rows.values() if r.user_id})
            stored = await providers.list_all(conn)
            for provider in stored:
                self.rt.learn_provider_secrets(provider.settings)
            return Batch(
                rows=rows,
                open_attempts=await store.open_attempts_of(conn, ids),
                profiles=await profiles.get_many(conn, user_ids),
                configurations=[
                    plan.Configuration(
                        id=p.id, provider=p.provider, settings=p.settings, is_default=p.is_default
                    )
                    for p in stored
                ],
                strategy=_strategy(await routing_strategies.default(conn)),
                tags=await store.tags_of_many(conn, ids),
            )

    async def _guarded(self, message_id: str, batch: Batch) -> None:
        freed = False

        def free_slot() -> None:
            # A slot is a send in flight: it is free again once the provider has answered,
            # while the answer is recorded (the message stays busy until then, so it is not
            # claimed again, and shutdown still waits for the task).
            nonlocal freed
            if not freed:
                freed = True
                self._free += 1
                self._slots.release()
                self._freed.set()

        try:
            await self.process(message_id, batch, on_answer=free_slot)
        except Exception as exc:
            if is_fault(exc):
                # The database or the network: one log line for the whole outage, not one
                # per message; the message goes back in the queue once the database answers.
                self._send_faults.failed(exc)
            else:
                log.exception("dispatch failed; retrying later", message_id=message_id)
            try:
                await self._release({message_id})
            except Exception:
                self._unreleased.add(message_id)
        else:
            self._send_faults.ok()
        finally:
            self._busy.discard(message_id)
            free_slot()

    async def _guarded_group(self, message_ids: list[str], batch: Batch) -> None:
        try:
            await self.process_group(message_ids, batch)
        except Exception as exc:
            if is_fault(exc):
                self._send_faults.failed(exc)
            else:
                log.exception("dispatch failed; retrying later", message_ids=len(message_ids))
            try:
                # Only those still leased to this worker: the ones already done are not.
                await self._release(set(message_ids))
            except Exception:
                self._unreleased.update(message_ids)
        else:
            self._send_faults.ok()
        finally:
            self._busy.difference_update(message_ids)
            self._free += 1
            self._slots.release()
            self._freed.set()

    # -- one message --------------------------------------------------------------------

    def situation(self, message_id: str, batch: Batch) -> plan.Situation | None:
        """What :func:`plan.plan_message` needs to decide about one claimed message."""
        row = batch.rows.get(message_id)
        if row is None:
            return None
        return plan.Situation(
            message_id=message_id,
            owner=self.owner,
            now=utcnow(),
            queued=row.queued,
            lease_owner=row.lease_owner,
            expires_at=row.expires_at,
            attempts=row.attempts,
            in_doubt=row.in_doubt,
            has_open_attempt=message_id in batch.open_attempts,
            user_id=row.user_id,
            rendered=bool(row.rendered),
            payload=row.payload,
            stored_profile=batch.profiles.get(row.user_id) if row.user_id else None,
            provider_id=row.provider_id,
            route=plan.RouteState.from_row(row.route, row.route_step),
            configurations=batch.configurations,
            strategy=batch.strategy,
            providers=registry.classes(),
            trusted=self.rt.network_policy().trusted,
        )

    async def process(
        self, message_id: str, batch: Batch, *, on_answer: Callable[[], None] | None = None
    ) -> None:
        """Carry out the plan for one claimed message (see :mod:`tidings.workers.plan`).
        ``on_answer``: called once the provider has answered its send, if it is sent."""
        situation = self.situation(message_id, batch)
        if situation is None:
            return
        row = batch.rows[message_id]
        decision = plan.plan_message(situation)
        if isinstance(decision, plan.Skip):
            return
        if isinstance(decision, plan.End):
            await self._end(row, decision)
            return
        await self._go(row, batch, decision, on_answer)

    async def _go(
        self, row: Any, batch: Batch, go: plan.Go, on_answer: Callable[[], None] | None = None
    ) -> None:
        prepared = await self._prepare(row, go, batch, shaped=False)
        if prepared is not None:
            await self._send_single(prepared, batch, on_answer=on_answer)

    async def _prepare(
        self,
        row: Any,
        go: plan.Go,
        batch: Batch,
        *,
        shaped: bool,
        proofs: Mapping[str, Found | None] | None = None,
    ) -> Prepared | None:
        """Settle an unanswered attempt, leave out an excluded recipient, render: the message
        ready to send, or None when it was dealt with here. ``shaped``: also find the
        rendering's shape (render/shape.py), for a batch send."""
        payload: dict[str, Any] = row.payload
        impl = self.providers.get(go.configuration.provider)
        config = go.config
        # History learned on the way and columns to set, written with this message's next
        # write.
        pending = list(go.history)
        updates: dict[str, Any] = {}
        if go.route_changed:
            updates.update(route=go.route.as_json(), route_step=go.route.step)

        open_attempt = batch.open_attempts.get(row.id)
        if open_attempt is not None or row.in_doubt:
            try:
                settled = await self._settle_in_doubt(row, impl, config, open_attempt, proofs)
            except ProviderRefused as exc:
                # Asking again would be refused again (the network policy, a moved host, no
                # log at all): end the message with the reason instead of retrying it for
                # ever, and do not send it again, since the unanswered attempt may have
                # arrived.
                await self._fail(
                    row,
                    Reason.PROVIDER_ERROR,
                    f"the last attempt went unanswered and {impl.name}'s event log cannot be "
                    f"asked whether it arrived ({exc}); not sent again",
                    pending=pending,
                    updates=updates,
                )
                return None
            if settled:
                return None

        allowed = await self._excluded(row, go.email, impl, pending, updates)
        if allowed is None:
            return None

        shape: Shape | None = None
        stored = RenderedEmail(**row.rendered) if row.rendered else None
        if stored is not None and not shaped:
            rendered = stored
        else:
            try:
                # In a worker process with a time and a memory budget (render/pool.py): a
                # runaway template fails its own message, and its worker is replaced.
                resolved = compose.Resolved(email=go.email, profile=go.profile)
                if shaped:
                    try:
                        rendered, wire = await self.rt.render_pool.run(
                            render_with_shape, payload, go.profile
                        )
                        shape = Shape.from_wire(wire) if wire is not None else None
                    except RenderFailure:
                        # Two renders in one budget may overrun where one does not: the
                        # message is judged by the render a single send makes.
                        rendered = await self.rt.render_pool.run(compose.render, payload, resolved)
                else:
                    rendered = await self.rt.render_pool.run(compose.render, payload, resolved)
            except (RenderError, ValidationError, RenderFailure) as exc:
                if stored is None:
                    await self._fail(
                        row,
                        Reason.FAILED,
                        f"rendering failed: {exc}",
                        pending=pending,
                        updates=updates,
                    )
                    return None
                rendered, shape = stored, None  # rendered before: send that, alone
            if stored is not None:
                if rendered != stored:
                    # What the first attempt rendered is what is sent.
                    rendered, shape = stored, None
            else:
                updates["rendered"] = rendered.as_dict()
                pending.append(
                    (
                        HistoryType.RENDERED.value,
                        {
                            "subject": rendered.subject,
                            "html_bytes": len(rendered.html or ""),
                            "text_bytes": len(rendered.text or ""),
                            **render_facts(payload, rendered),
                        },
                    )
                )
        return Prepared(row, go, impl, rendered, shape, pending, updates, allowed.headers)

    async def _excluded(
        self,
        row: Any,
        address: str,
        impl: Provider,
        pending: list[tuple[str, dict[str, Any]]],
        updates: dict[str, Any],
    ) -> consent.Consent | None:
        """The one place a recipient is left out before the provider is called (single and
        batch sends alike): None when ``row`` was ended here, with why (suppressed, or
        opted out of its subscription topic); else what its topic adds to the email."""
        suppressed = await self._suppressed(address)
        if suppressed is not None:
            # About the recipient, not the provider: never failed over.
            reason = Reason.UNSUBSCRIBED if suppressed.reason != "bounce" else Reason.BOUNCED
            await self._fail(
                row,
                reason,
                f"{address} is on the suppression list ({suppressed.reason}"
                f"{', code ' + str(suppressed.code) if suppressed.code else ''}); "
                f"{impl.name} was not called. Remove it with DELETE /suppressions/{{address}}.",
                history_extra={"suppression": suppressed.as_dict()},
                pending=pending,
                updates=updates,
            )
            return None
        # The recipient's subscription preferences (workers/consent.py): None = filtered.
        return await consent.check(self.rt, row, address, pending, updates)

    async def _hold(self, p: Prepared, reserved: Reservation) -> None:
        """Over the configuration's rate, or the provider asked every sender of it to wait:
        back in the queue for then, no attempt spent."""
        configuration = p.go.configuration
        pending, updates = list(p.pending), dict(p.updates)
        if reserved.paused_until is not None:
            until = reserved.paused_until.isoformat()
            pending.append(
                (
                    "THROTTLED",
                    {
                        "note": f"paused: {p.impl.name} asked to wait until {until}",
                        "paused_until": until,
                        "integration": _integration(configuration),
                        "worker": self.owner,
                    },
                )
            )
        updates.update(
            next_attempt_at=utcnow() + timedelta(seconds=reserved.wait_s),
            lease_owner=None,
            lease_until=None,
        )

        async def requeue(conn: Conn) -> None:
            await _write_pending(conn, p.row.id, pending)
            await store.update(conn, p.row.id, **updates)

        await self.rt.db.grouped(requeue)

    def _secrets(self, p: Prepared) -> tuple[str | None, ...]:
        # Every key this send could reveal is masked, should a user have pasted one into a
        # field: the message's own (override) key and the configuration's stored ones.
        return (
            *p.go.config.secrets(),
            *(
                p.go.configuration.settings.get(name)
                for name in p.impl.settings_model.SECRET_FIELDS
            ),
        )

    def _outgoing(self, p: Prepared, batch: Batch) -> OutgoingEmail:
        """The message's email as a single send carries it; raises ComposeError."""
        resolved = compose.Resolved(email=p.go.email, profile=p.go.profile)
        return compose.outgoing(
            p.row.id,
            p.row.payload,
            resolved,
            p.rendered,
            p.go.config,
            batch.tags.get(p.row.id, []),
            provider_key=p.impl.key,
            extra_headers=p.headers,
        )

    async def _send_single(
        self,
        p: Prepared,
        batch: Batch,
        *,
        reserved: bool = False,
        on_answer: Callable[[], None] | None = None,
    ) -> None:
        """One provider call for one message (``reserved``: its rate token is taken;
        ``on_answer``: called as soon as the provider has answered, before it is recorded)."""
        row, go, impl = p.row, p.go, p.impl
        message_id = row.id
        configuration, config = go.configuration, go.config
        pending, updates = p.pending, p.updates
        if not reserved:
            reservation = await self.limiter.reserve(
                configuration.id, configuration.settings.get("rate_limit")
            )
            if reservation.wait_s > 0:
                await self._hold(p, reservation)
                return
        try:
            email = self._outgoing(p, batch)
            request = impl.build(email, config)
        except compose.ComposeError as exc:
            await self._fail(row, Reason.FAILED, str(exc), pending=pending, updates=updates)
            return
        except RequestError as exc:
            await self._fail(row, Reason.PROVIDER_ERROR, str(exc), pending=pending, updates=updates)
            return
        number = row.attempts + 1
        request_record = impl.record(request, self._secrets(p)).as_dict()

        async def begin(conn: Conn) -> int:
            """Render results and the attempt, committed before the provider is called."""
            await _write_pending(conn, message_id, pending)
            attempt_id = await store.start_attempt(
                conn, message_id, number, config.target, request_record
            )
            await store.update(
                conn,
                message_id,
                attempts=number,
                provider_id=configuration.id,
                provider_domain=config.domain,
                **updates,
            )
            return attempt_id

        attempt_id = await self.rt.db.grouped(begin)
        outcome = await impl.send(request, config)
        if on_answer is not None:
            on_answer()
        self.rt.metrics.attempts.labels(outcome.kind.value).inc()
        self.rt.metrics.attempt_seconds.observe(outcome.duration_ms / 1000)
        paused_until = await self._pause_for(outcome, configuration)
        await self._record(
            row, batch, go, impl, attempt_id, number, outcome, request_record, paused_until
        )

    # -- many messages ------------------------------------------------------------------

    async def process_group(self, message_ids: list[str], batch: Batch) -> None:
        """The claimed messages of one request: each decided and prepared as alone, then
        those that share a shape and a route sent as batch calls, the rest alone."""
        goes: list[tuple[Any, plan.Go]] = []
        ends: list[Awaitable[None]] = []
        for message_id in message_ids:
            situation = self.situation(message_id, batch)
            if situation is None:
                continue
            row = batch.rows[message_id]
            decision = plan.plan_message(situation)
            if isinstance(decision, plan.Skip):
                continue
            if isinstance(decision, plan.End):
                ends.append(self._end(row, decision))
                continue
            goes.append((row, decision))
        await _all(ends)
        limit = asyncio.Semaphore(GROUP_CONCURRENCY)
        proofs = await self._look_up_unanswered(goes, batch)

        async def prepare(row: Any, go: plan.Go) -> Prepared | None:
            async with limit:
                return await self._prepare(
                    row, go, batch, shaped=go.provider.max_batch > 1, proofs=proofs
                )

        prepared = [p for p in await _all([prepare(r, g) for r, g in goes]) if p is not None]
        members: dict[str, batching.Member] = {}
        alone: list[Prepared] = []
        for p in prepared:
            if p.shape is None or p.impl.max_batch <= 1:
                alone.append(p)
                continue
            try:
                email = self._outgoing(p, batch)
            except compose.ComposeError:
                alone.append(p)  # the single send ends it with the reason
                continue
            members[p.row.id] = batching.Member(
                email=email,
                shape=p.shape,
                configuration_id=p.go.configuration.id,
                step=p.go.route.step,
                config=p.go.config,
            )
        # Planned per provider: each has its own most recipients per call.
        by_provider: dict[str, list[Prepared]] = {}
        for p in prepared:
            if p.row.id in members:
                by_provider.setdefault(p.impl.key, []).append(p)
        batches: list[list[Prepared]] = []
        for candidates in by_provider.values():
            size = min(self.settings.mailgun_batch_size, candidates[0].impl.max_batch)
            planned, rest = batching.plan_batches(candidates, lambda p: members[p.row.id], size)
            batches.extend(planned)
            alone.extend(rest)

        async def single(p: Prepared) -> None:
            async with limit:
                await self._send_single(p, batch)

        await _all(
            [
                *(single(p) for p in alone),
                *(
                    self._send_batch(group, [members[p.row.id] for p in group], batch)
                    for group in batches
                ),
            ]
        )

    async def _send_batch(
        self, group: list[Prepared], group_members: list[batching.Member], batch: Batch
    ) -> None:
        """One provider call for every message of ``group`` (they share a batch key): rate
        tokens one per recipient, every attempt committed before the call, its one answer
        recorded for each message."""
        first = group[0]
        impl, configuration, config = first.impl, first.go.configuration, first.go.config
        # The provider counts recipients, not calls: so does the rate limit.
        reservations = await asyncio.gather(
            *(
                self.limiter.reserve(configuration.id, configuration.settings.get("rate_limit"))
                for _ in group
            )
        )
        if all(r.paused_until is not None for r in reservations):
            # The provider asked every sender to wait: the batch waits as one, and comes
            # back together.
            longest = max(reservations, key=lambda r: r.wait_s)
            reservations = [longest] * len(reservations)
        sending: list[tuple[Prepared, batching.Member]] = []
        held: list[Awaitable[None]] = []
        for p, member, reservation in zip(group, group_members, reservations, strict=True):
            if reservation.wait_s > 0:
                held.append(self._hold(p, reservation))
            else:
                sending.append((p, member))
        await _all(held)
        if len(sending) < 2:
            for p, _ in sending:
                await self._send_single(p, batch, reserved=True)
            return
        try:
            request = impl.build_batch(
                batching.outgoing_batch([member for _, member in sending]), config
            )
        except RequestError as exc:
            log.info("sending alone what cannot be one batch", reason=str(exc))
            await _all([self._send_single(p, batch, reserved=True) for p, _ in sending])
            return
        secrets = self._secrets(first)
        records = {
            p.row.id: impl.record_member(request, member.email.to, secrets).as_dict()
            for p, member in sending
        }
        lease_until = utcnow() + timedelta(seconds=self.settings.lease_s)

        async def begin(conn: Conn) -> dict[str, int]:
            """Every message's render results and attempt, committed before the call."""
            ids: dict[str, int] = {}
            for p, _ in sending:
                message_id = p.row.id
                await _write_pending(conn, message_id, p.pending)
                ids[message_id] = await store.start_attempt(
                    conn, message_id, p.row.attempts + 1, config.target, records[message_id]
                )
                await store.update(
                    conn,
                    message_id,
                    attempts=p.row.attempts + 1,
                    provider_id=configuration.id,
                    provider_domain=config.domain,
                    # Rendering a large batch took time: the lease covers the call again.
                    lease_until=lease_until,
                    **p.updates,
                )
            return ids

        attempt_ids = await self.rt.db.grouped(begin)
        outcome = await impl.send(request, config)
        self.rt.metrics.attempts.labels(outcome.kind.value).inc(len(sending))
        self.rt.metrics.attempt_seconds.observe(outcome.duration_ms / 1000)
        paused_until = await self._pause_for(outcome, configuration)
        info = {"size": len(sending)}
        # One backoff (and one jitter) for the whole batch, so that it comes back together
        # and is retried as one batch.
        backoff = self._backoff(max(p.row.attempts + 1 for p, _ in sending))
        jitter = random.uniform(0, 0.25)
        answered = utcnow()  # one time for all: their retry times are then equal too
        await _all(
            [
                self._record(
                    p.row,
                    batch,
                    p.go,
                    impl,
                    attempt_ids[p.row.id],
                    p.row.attempts + 1,
                    outcome,
                    records[p.row.id],
                    paused_until,
                    batch_info=info,
                    backoff_s=backoff,
                    jitter_s=jitter,
                    now=answered,
                )
                for p, _ in sending
            ]
        )

    # -- outcomes -----------------------------------------------------------------------

    def _provider_timeout_s(self, payload: dict[str, Any], key: str) -> float | None:
        """``timeout.providers[key]``, else ``timeout.provider``, else the server's default
        (seconds); only consulted when the route has another provider to try."""
        given = payload.get("provider_timeouts_ms") or {}
        ms = given.get(key, given.get("*"))
        if ms is not None:
            return float(ms) / 1000
        return self.settings.provider_timeout_s

    async def _record(
        self,
        row: Any,
        batch: Batch,
        go: plan.Go,
        impl: Provider,
        attempt_id: int,
        number: int,
        outcome: SendOutcome,
        request_record: dict[str, Any],
        paused_until: datetime | None,
        *,
        batch_info: dict[str, Any] | None = None,
        backoff_s: float | None = None,
        jitter_s: float | None = None,
        now: datetime | None = None,
    ) -> None:
        now = now or utcnow()
        configuration = go.configuration
        attempt_data: dict[str, Any] = {
            "attempt": number,
            "worker": self.owner,
            "integration": _integration(configuration),
            "region": go.config.region,
            "request": request_record,
            "response": {"status": outcome.status_code, "body": outcome.response_body},
            "duration_ms": round(outcome.duration_ms, 1),
        }
        if batch_info is not None:
            # One call for many messages: its answer is this message's too.
            attempt_data["batch"] = batch_info
        step = plan.next_step(go.route, batch.configurations)
        decision = plan.plan_outcome(
            outcome,
            provider_name=impl.name,
            number=number,
            now=now,
            expires_at=row.expires_at,
            route=go.route,
            next_step=step,
            provider_timeout_s=self._provider_timeout_s(row.payload, impl.key),
            backoff_s=backoff_s if backoff_s is not None else self._backoff(number),
            in_doubt_lag_s=self.settings.in_doubt_lag_s,
            paused_until=paused_until,
            jitter_s=jitter_s if jitter_s is not None else random.uniform(0, 0.25),
        )

        async def write(conn: Conn) -> None:
            await store.finish_attempt(
                conn,
                attempt_id,
                outcome=outcome.kind.value,
                status_code=outcome.status_code,
                response=outcome.response_body,
                duration_ms=outcome.duration_ms,
            )
            if isinstance(decision, plan.Sent):
                await _write_sent(conn, row, now, outcome.provider_message_id, attempt_data)
                return
            if isinstance(decision, plan.Undeliverable):
                await _write_undeliverable(
                    conn,
                    row,
                    now,
                    decision.reason,
                    decision.message,
                    code=outcome.status_code,
                    hint=outcome.hint,
                    history=attempt_data,
                )
                return
            if isinstance(decision, plan.FailOver):
                route = plan.RouteState(go.route.providers, decision.step, now, go.route.skipped)
                await store.update(
                    conn,
                    row.id,
                    route=route.as_json(),
                    route_step=route.step,
                    next_attempt_at=now,
                    in_doubt=False,
                    lease_owner=None,
                    lease_until=None,
                    hint=outcome.hint,
                    error=outcome.error_message,
                )
                await store.add_history(
                    conn,
                    row.id,
                    HistoryType.FAILOVER.value,
                    {
                        **attempt_data,
                        "left": _integration(configuration),
                        "why": decision.why,
                        "next": route.key,
                        "outcome": outcome.kind.value,
                        "error_message": outcome.error_message,
                        "hint": outcome.hint,
                    },
                    ts=now,
                )
                return
            if decision.note:
                attempt_data["note"] = decision.note
            await store.update(
                conn,
                row.id,
                next_attempt_at=decision.retry_at,
                in_doubt=decision.in_doubt,
                lease_owner=None,
                lease_until=None,
                hint=outcome.hint,
                error=outcome.error_message,
            )
            await store.add_history(
                conn,
                row.id,
                "IN_DOUBT" if decision.in_doubt else "RETRYING",
                {
                    **attempt_data,
                    "error_message": outcome.error_message,
                    "outcome": outcome.kind.value,
                    "retry_at": decision.retry_at.isoformat(),
                    "hint": outcome.hint,
                },
                ts=now,
            )

        await self.rt.db.grouped(write)
        if isinstance(decision, plan.FailOver):
            self.rt.wake()  # the next provider's turn is now

    async def _pause_for(
        self, outcome: SendOutcome, configuration: plan.Configuration
    ) -> datetime | None:
        """The pause in force after a 420/429 that named a time (stored first, so that other
        workers stop at once; if it cannot be stored, this send still waits)."""
        if outcome.kind is not OutcomeKind.THROTTLED or outcome.retry_at is None:
            return None
        try:
            return await self.limiter.pause(configuration.id, outcome.retry_at)
        except Exception as exc:
            log.warning(
                "could not store the provider's pause", integration=configuration.id, error=exc
            )
            return None

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter, capped."""
        ceiling = min(self.settings.retry_max_s, self.settings.retry_base_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    async def _attempt_started(self, row: Any, attempt: Any | None) -> datetime:
        """When the unanswered attempt of ``row`` started (its last one)."""
        started: datetime | None = attempt.started_at if attempt is not None else None
        if started is None:
            async with self.rt.db.read() as conn:
                attempts = await store.attempts_of(conn, row.id)
            started = attempts[-1].started_at if attempts else row.enqueued
        assert started is not None
        return started

    async def _look_up_unanswered(
        self, goes: list[tuple[Any, plan.Go]], batch: Batch
    ) -> dict[str, Found | None]:
        """The unanswered attempts of a group (an unanswered batch call), looked up in the
        provider's log at once per configuration: by Tidings id, what was found (None: not
        found). Ids absent from the answer are looked up alone, as a single send's are."""
        doubtful = [(row, go) for row, go in goes if row.id in batch.open_attempts or row.in_doubt]
        if len(doubtful) < 2:
            return {}
        by_config: dict[str, list[tuple[Any, plan.Go]]] = {}
        for row, go in doubtful:
            by_config.setdefault(f"{go.configuration.id}|{go.config!r}", []).append((row, go))
        proofs: dict[str, Found | None] = {}
        for members in by_config.values():
            go = members[0][1]
            starts = [
                await self._attempt_started(r, batch.open_attempts.get(r.id)) for r, _ in members
            ]
            try:
                found = await self.providers.get(go.configuration.provider).find_sent_many(
                    go.config,
                    {row.id: row.recipient_email for row, _ in members},
                    begin=min(starts) - timedelta(minutes=5),
                )
            except ProviderError:
                continue  # asked one by one, each ending or waiting as a single send does
            proofs.update({row.id: found.get(row.id) for row, _ in members})
        return proofs

    async def _settle_in_doubt(
        self,
        row: Any,
        impl: Provider,
        config: ProviderConfig,
        attempt: Any | None,
        proofs: Mapping[str, Found | None] | None = None,
    ) -> bool:
        """Look for an unanswered attempt in the provider's event log (or in ``proofs``, when
        it was looked up with its batch). True when settled (found, or to be checked again
        later); False when it is safe to send again."""
        started = await self._attempt_started(row, attempt)
        if proofs is not None and row.id in proofs:
            found = proofs[row.id]
        else:
            found = await impl.find_sent(
                config,
                tidings_id=row.id,
                recipient=row.recipient_email,
                begin=started - timedelta(minutes=5),
            )
        now = utcnow()
        if found is not None:
            async with self.rt.db.write() as conn:
                if attempt is not None:
                    await store.finish_attempt(conn, attempt.id, outcome="sent")
                await _write_sent(
                    conn,
                    row,
                    found.at,
                    found.provider_message_id,
                    {
                        "note": "an attempt whose answer was lost was found in "
                        f"{impl.name}'s event log; not sent again"
                    },
                )
            return True
        if (now - started).total_seconds() < self.settings.in_doubt_lag_s:
            async with self.rt.db.write() as conn:
                await store.update(
                    conn,
                    row.id,
                    in_doubt=True,
                    next_attempt_at=started + timedelta(seconds=self.settings.in_doubt_lag_s),
                    lease_owner=None,
                    lease_until=None,
                )
            return True
        async with self.rt.db.write() as conn:
            if attempt is not None:
                await store.finish_attempt(conn, attempt.id, outcome="lost")
            await store.update(conn, row.id, in_doubt=False)
            await store.add_history(
                conn,
                row.id,
                "RETRYING",
                {
                    "note": f"the unanswered attempt is not in {impl.name}'s event log after "
                    f"{self.settings.in_doubt_lag_s:g} s: sending again"
                },
                ts=now,
            )
        return False

    async def _suppressed(self, address: str) -> suppressions.Suppression | None:
        # Read at the last moment: a bounce may have come in since the batch was loaded.
        # The sends starting in the same turn of the loop are looked up in one query.
        return await self._suppressions.get(address.strip().lower())

    async def _suppressions_of(self, addresses: list[str]) -> dict[str, suppressions.Suppression]:
        async with self.rt.db.read() as conn:
            return await suppressions.get_many(conn, addresses)

    async def _end(self, row: Any, end: plan.End) -> None:
        updates: dict[str, Any] = {}
        if end.route is not None:
            updates.update(route=end.route.as_json(), route_step=end.route.step)
        if end.unroutable:
            await self._unroutable(row, end.reason, end.message, end.history, updates)
        else:
            await self._fail(row, end.reason, end.message, pending=end.history, updates=updates)

    async def _unroutable(
        self,
        row: Any,
        reason: Reason,
        why: str,
        pending: list[tuple[str, dict[str, Any]]] | None = None,
        updates: dict[str, Any] | None = None,
    ) -> None:
        now = utcnow()
        facts = with_unroutable(facts_codec.load(row.facts), now, reason, why)

        async def write(conn: Conn) -> None:
            await _write_pending(conn, row.id, pending or [])
            await set_facts(
                conn,
                row,
                facts,
                queued=False,
                lease_owner=None,
                lease_until=None,
                **(updates or {}),
            )
            await store.add_history(
                conn,
                row.id,
                HistoryType.UNROUTABLE.value,
                {"reason": reason.value, "error_message": why},
                ts=now,
            )

        await self.rt.db.grouped(write)

    async def _fail(
        self,
        row: Any,
        reason: Reason,
        message: str,
        history_extra: dict[str, Any] | None = None,
        pending: list[tuple[str, dict[str, Any]]] | None = None,
        updates: dict[str, Any] | None = None,
    ) -> None:
        now = utcnow()

        async def write(conn: Conn) -> None:
            await _write_pending(conn, row.id, pending or [])
            if updates:
                await store.update(conn, row.id, **updates)
            await _write_undeliverable(conn, row, now, reason, message, history=history_extra)

        await self.rt.db.grouped(write)


async def _first_of(*waits: Awaitable[Any]) -> None:
    """Wait until the first of ``waits`` is done; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


async def _all(awaitables: Sequence[Awaitable[T]]) -> list[T]:
    """Every one awaited to its end, then the first failure raised: the messages of a group
    are given back (on a failure) only when none of them is still being sent."""
    results = await asyncio.gather(*awaitables, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return cast(list[T], results)


def _strategy(stored: routing_strategies.StoredStrategy | None) -> dict[str, Any] | None:
    if stored is None:
        return None
    return {"routing": stored.routing, "channels": stored.channels, "providers": stored.providers}


def _integration(configuration: plan.Configuration) -> dict[str, str]:
    return {"id": configuration.id, "provider": configuration.provider}


async def _write_sent(
    conn: Conn, row: Any, at: datetime, reference: str | None, history: dict[str, Any]
) -> None:
    """The provider has the message: sent at ``at``, out of the queue, its id kept."""
    facts = with_sent(facts_codec.load(row.facts), at)
    await set_facts(
        conn,
        row,
        facts,
        provider_message_id=reference,
        queued=False,
        in_doubt=False,
        lease_owner=None,
        lease_until=None,
        hint=None,
    )
    await store.add_history(
        conn, row.id, HistoryType.SENT.value, {**history, "reference": reference}, ts=at
    )


async def _write_undeliverable(
    conn: Conn,
    row: Any,
    now: datetime,
    reason: Reason,
    message: str,
    *,
    code: int | None = None,
    hint: str | None = None,
    history: dict[str, Any] | None = None,
) -> None:
    """The message will not be sent: its final facts, out of the queue, and why."""
    facts = with_failure(facts_codec.load(row.facts), now, reason, code, message)
    # Keep a hint an earlier attempt left (a throttled send that then expired) unless this
    # failure has its own.
    extra = {"hint": hint} if hint else {}
    await set_facts(
        conn, row, facts, queued=False, in_doubt=False, lease_owner=None, lease_until=None, **extra
    )
    data: dict[str, Any] = {**(history or {}), "error_message": message, "reason": reason.value}
    if hint:
        data["hint"] = hint
    await store.add_history(conn, row.id, HistoryType.UNDELIVERABLE.value, data, ts=now)


async def _write_pending(
    conn: Conn, message_id: str, pending: list[tuple[str, dict[str, Any]]]
) -> None:
    for type_, data in pending:
        await store.add_history(conn, message_id, type_, data)
