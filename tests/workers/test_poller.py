"""The poller against a real Mailgun sandbox on loopback and a real SQLite database.

Messages are sent to the sandbox directly and recorded as SENT in the database, as the
dispatcher would; the poller is then driven one ``tick`` at a time, so that the number of
Events API requests each tick makes is exact, not a matter of timing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.servers import serve_asgi
from tidings.config import Settings
from tidings.domain.events import DeliveryEvent, EventKind
from tidings.domain.status import NO_FACTS, with_sent
from tidings.providers.registry import Providers
from tidings.runtime import Runtime
from tidings.sandbox import Sandbox, SandboxSettings
from tidings.store import facts as facts_codec
from tidings.store import messages as messages_store
from tidings.store import poll_cursors, providers, suppressions
from tidings.store.clock import utcnow
from tidings.store.database import Database
from tidings.store.events import record_event
from tidings.store.keyring import KeyRing
from tidings.store.messages import HistoryEntry, NewMessage
from tidings.store.providers import StoredProvider
from tidings.store.status_feed import set_facts
from tidings.workers.poller import Poller, group_providers


async def tick_until(poller: Poller, condition: Callable[[], Any], within_s: float = 10.0) -> None:
    """Tick until ``condition()`` (sync or async) holds: a poller polls a group again only
    once it is due, so this waits for exactly that rather than for a guessed time."""
    deadline = time.monotonic() + within_s
    while True:
        await poller.tick()
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError("the poller never reached the condition")
        await asyncio.sleep(0.01)


DOMAIN = "mg.poll.test"
EVENTS_ROUTES = ("GET /v3/{domain}/events", "GET /v3/{domain}/events/{token}")


@dataclass
class World:
    url: str
    sandbox: Sandbox
    db: Database
    db_url: str
    http: httpx.AsyncClient

    def runtime(self, **overrides: Any) -> Runtime:
        values: dict[str, Any] = {
            "db_url": self.db_url,
            "api_key": "tk_test_poller",
            "poll_interval_s": 0.05,
            "poll_trust_s": 3600.0,
            "poll_overlap_s": 1.0,
        }
        values.update(overrides)
        return Runtime(settings=Settings(**values), db=self.db, keyring=KeyRing(None, []))

    def event_requests(self) -> int:
        counts = self.sandbox.store.stats()["requests"]
        return sum(sum(counts.get(route, {}).values()) for route in EVENTS_ROUTES)

    async def add_provider(self, polling: str = "on", api_key: str | None = None) -> StoredProvider:
        async with self.db.write() as conn:
            return await providers.create(
                conn,
                provider="mailgun",
                settings={
                    "api_key": api_key or self.sandbox.settings.api_key,
                    "domain": DOMAIN,
                    "host": self.url,
                    "polling": polling,
                },
            )

    async def send(self, provider: StoredProvider, address: str, tidings_id: str) -> str:
        """Send through the sandbox and record the message as SENT, as the dispatcher does."""
        answer = await self.http.post(
            f"{self.url}/v3/{DOMAIN}/messages",
            auth=("api", self.sandbox.settings.api_key),
            data={
                "from": f"Acme <no-reply@{DOMAIN}>",
                "to": address,
                "subject": "Hello",
                "text": "Hello there",
                "v:tidings-id": tidings_id,
            },
        )
        answer.raise_for_status()
        mailgun_id = str(answer.json()["id"]).strip("<>")
        now = utcnow()
        async with self.db.write() as conn:
            await messages_store.insert(
                conn,
                [
                    NewMessage(
                        id=tidings_id,
                        request_id=f"r-{tidings_id}",
                        recipient=address,
                        recipient_email=address,
                        user_id=None,
                        payload={},
                        tags=[],
                        trace_id=None,
                        event=None,
                        next_attempt_at=now,
                        expires_at=None,
                    )
                ],
                [HistoryEntry("ENQUEUED", now, {})],
            )
            await messages_store.update(
                conn,
                tidings_id,
                queued=False,
                provider_id=provider.id,
                provider_domain=DOMAIN,
                provider_message_id=mailgun_id,
                **facts_codec.columns(with_sent(NO_FACTS, now)),
            )
        return mailgun_id

    async def wait_events(self, count: int) -> None:
        """Until the sandbox's log holds ``count`` events that are not ``accepted``."""
        for _ in range(1000):
            log = self.sandbox.store.logs[DOMAIN].records
            if sum(1 for r in log if r.item["event"] != "accepted") >= count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"the sandbox never produced {count} events")

    async def message(self, message_id: str) -> Any:
        async with self.db.read() as conn:
            return await messages_store.get(conn, message_id)

    async def history_types(self, message_id: str) -> list[str]:
        async with self.db.read() as conn:
            return [h.type for h in await messages_store.history_of(conn, message_id)]

    async def event_keys(self, message_id: str) -> list[str]:
        async with self.db.read() as conn:
            entries = await messages_store.history_of(conn, message_id)
        return [h.event_key for h in entries if h.event_key]

    async def cursor(self) -> poll_cursors.Cursor | None:
        async with self.db.read() as conn:
            return await poll_cursors.get(conn, self.url, DOMAIN)


@pytest.fixture
def sandbox_url() -> Iterator[tuple[str, Sandbox]]:
    sandbox = Sandbox(
        SandboxSettings(domains=[DOMAIN], event_delay=0.01, retry_scale=0.001, seed=7)
    )
    with serve_asgi(sandbox.asgi()) as url:
        yield url, sandbox


@pytest.fixture
async def world(
    sandbox_url: tuple[str, Sandbox], db_url: str, tmp_path: Path
) -> AsyncIterator[World]:
    db = Database(db_url)
    await db.upgrade()
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            yield World(sandbox_url[0], sandbox_url[1], db, db_url, http)
    finally:
        await db.close()


@pytest.fixture
async def client() -> AsyncIterator[Providers]:
    async with Providers() as mailgun:
        yield mailgun


async def test_nothing_outstanding_means_no_request(world: World, client: Providers) -> None:
    await world.add_provider("on")
    poller = Poller(world.runtime(), client)
    for _ in range(5):
        await poller.tick()
    assert world.event_requests() == 0
    assert await world.cursor() is None


async def test_polling_off_never_requests(world: World, client: Providers) -> None:
    provider = await world.add_provider("off")
    await world.send(provider, "ann+bounce@example.test", "msg_off")
    await world.wait_events(1)
    poller = Poller(world.runtime(), client)
    for _ in range(5):
        await poller.tick()
    assert world.event_requests() == 0
    row = await world.message("msg_off")
    assert row.status == "SENT"


async def test_one_request_per_page_not_per_message(world: World, client: Providers) -> None:
    provider = await world.add_provider("on")
    # 350 delivered events: a full page of 300 and a short one of 50.
    for n in range(350):
        await world.send(provider, f"user{n}@example.test", f"msg_{n:04d}")
    await world.wait_events(350)
    poller = Poller(world.runtime(), client)
    await poller.tick()
    assert world.event_requests() == 2
    async with world.db.read() as conn:
        pending = await poll_cursors.outstanding(conn, DOMAIN, since=utcnow() - timedelta(days=1))
    # Delivered messages stay outstanding (opens may follow), but none is still SENT.
    assert pending.count == 350
    for n in (0, 299, 300, 349):
        assert (await world.message(f"msg_{n:04d}")).status == "DELIVERED"
    # A cycle later the tail is read from where it stopped: one request, nothing re-read.
    await tick_until(poller, lambda: world.event_requests() > 2)
    assert world.event_requests() == 3


async def test_statuses_reasons_and_times(world: World, client: Providers) -> None:
    provider = await world.add_provider("on")
    sent = {
        "bounce": await world.send(provider, "bob+bounce@example.test", "msg_bounce"),
        "click": await world.send(provider, "cy+click@example.test", "msg_click"),
        "defer": await world.send(provider, "dee+defer@example.test", "msg_defer"),
        "complain": await world.send(provider, "eve+complain@example.test", "msg_complain"),
    }
    # bounce 1, click 3, defer 2, complain 2
    await world.wait_events(8)
    poller = Poller(world.runtime(), client)
    await poller.tick()

    bounced = await world.message("msg_bounce")
    assert (bounced.status, bounced.reason) == ("UNDELIVERABLE", "BOUNCED")
    assert bounced.facts["failure"]["code"] == 550
    clicked = await world.message("msg_click")
    assert clicked.status == "CLICKED"
    events = world.sandbox.store.events_of_message(sent["click"])
    stamp = {e["event"]: e["timestamp"] for e in events}
    assert clicked.delivered.timestamp() == pytest.approx(stamp["delivered"])
    assert clicked.opened.timestamp() == pytest.approx(stamp["opened"])
    assert clicked.clicked.timestamp() == pytest.approx(stamp["clicked"])
    deferred = await world.message("msg_defer")
    assert deferred.status == "DELIVERED"
    assert "TEMPORARY_FAILURE" in await world.history_types("msg_defer")
    assert (await world.message("msg_complain")).status == "DELIVERED"
    assert "COMPLAINED" in await world.history_types("msg_complain")
    async with world.db.read() as conn:
        assert (await suppressions.get(conn, "bob+bounce@example.test")) is not None
        listed = await suppressions.get(conn, "eve+complain@example.test")
    assert listed is not None and listed.reason == "complaint"
    # Every history entry from Mailgun came from polling, and `accepted` was not asked for.
    async with world.db.read() as conn:
        entries = await messages_store.history_of(conn, "msg_click")
    polled = [h for h in entries if h.event_key]
    assert polled and all(h.data["source"] == "poll" for h in polled)
    assert "ACCEPTED" not in [h.type for h in entries]


async def test_trust_pass_advances_the_cursor_and_a_restart_resumes(
    world: World, client: Providers
) -> None:
    provider = await world.add_provider("on")
    await world.send(provider, "ann+open@example.test", "msg_a")
    await world.wait_events(2)
    rt = world.runtime(poll_trust_s=0.2, poll_overlap_s=0.0)
    first = Poller(rt, client)
    await first.tick()
    assert (await world.message("msg_a")).status == "OPENED"
    keys_before = await world.event_keys("msg_a")
    assert len(keys_before) == 2

    # Once the events are older than the trust threshold, a trust pass settles them.
    last_event = max(r.timestamp for r in world.sandbox.store.logs[DOMAIN].records)

    async def settled_past_last_event() -> bool:
        cursor = await world.cursor()
        return cursor is not None and cursor.settled_until.timestamp() > last_event

    await tick_until(first, settled_past_last_event)
    cursor = await world.cursor()
    assert cursor is not None
    assert cursor.settled_until.timestamp() > last_event
    assert cursor.settled_until <= utcnow() - timedelta(seconds=rt.settings.poll_trust_s)

    # "Restart": the first poller stops (giving back its lease, as run() does) and a new one
    # starts on the same database, with more mail sent meanwhile.
    async with world.db.write() as conn:
        await poll_cursors.release_leases(conn, first.owner)
    await world.send(provider, "bob+click@example.test", "msg_b")
    await world.wait_events(5)
    before = world.event_requests()
    second = Poller(rt, client)
    await second.tick()
    assert (await world.message("msg_b")).status == "CLICKED"
    assert await world.event_keys("msg_a") == keys_before  # nothing recorded twice
    assert len(set(await world.event_keys("msg_b"))) == len(await world.event_keys("msg_b")) == 3
    # The settled part was not read again: at most a trust pass and the tail.
    assert world.event_requests() - before <= 3
    assert (await world.cursor()) is not None


async def test_auto_mode_follows_webhooks(world: World, client: Providers) -> None:
    provider = await world.add_provider("auto")
    await world.send(provider, "ann@example.test", "msg_auto")
    await world.wait_events(1)
    rt = world.runtime(poll_auto_after_s=5.0, poll_auto_quiet_s=60.0)
    now = utcnow()
    async with world.db.write() as conn:
        # Signed webhooks for ten seconds without a gap: they are flowing.
        for seconds in (10, 7, 4, 1):
            await poll_cursors.note_webhook(
                conn, world.url, DOMAIN, now - timedelta(seconds=seconds), quiet_s=60.0
            )
    poller = Poller(rt, client)
    await poller.tick()
    assert world.event_requests() == 0
    assert (await world.message("msg_auto")).status == "SENT"

    # Webhooks stop: the last one is now older than the quiet threshold.
    quiet = world.runtime(poll_auto_after_s=5.0, poll_auto_quiet_s=0.5)
    poller = Poller(quiet, client)
    await tick_until(poller, lambda: world.event_requests() >= 1)
    assert (await world.message("msg_auto")).status == "DELIVERED"


async def test_auto_mode_polls_until_webhooks_have_flowed_long_enough(
    world: World, client: Providers
) -> None:
    provider = await world.add_provider("auto")
    await world.send(provider, "ann@example.test", "msg_young")
    await world.wait_events(1)
    async with world.db.write() as conn:
        await poll_cursors.note_webhook(conn, world.url, DOMAIN, utcnow(), quiet_s=60.0)
    poller = Poller(world.runtime(poll_auto_after_s=3600.0, poll_auto_quiet_s=60.0), client)
    await poller.tick()
    assert world.event_requests() >= 1
    assert (await world.message("msg_young")).status == "DELIVERED"


async def test_mailgun_errors_do_not_stop_the_poller(world: World, client: Providers) -> None:
    provider = await world.add_provider("on", api_key="wrong-key")
    await world.send(provider, "ann@example.test", "msg_err")
    poller = Poller(world.runtime(), client)
    await poller.tick()  # 401: logged, backed off, no exception
    counts = world.sandbox.store.stats()["requests"]
    assert counts["GET /v3/{domain}/events"] == {"401": 1}
    await poller.tick()  # backing off: no second request yet
    assert world.event_requests() == 1


async def test_run_loop_settles_and_stops(world: World, client: Providers) -> None:
    provider = await world.add_provider("on")
    await world.send(provider, "ann+open@example.test", "msg_loop")
    rt = world.runtime()
    stop = asyncio.Event()
    task = asyncio.create_task(Poller(rt, client).run(stop))
    try:
        for _ in range(400):
            if (await world.message("msg_loop")).status == "OPENED":
                break
            await asyncio.sleep(0.025)
        assert (await world.message("msg_loop")).status == "OPENED"
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


def _stored(pid: str, polling: str, domain: str = DOMAIN, host: str = "http://h") -> Any:
    now = datetime.now().astimezone()
    return StoredProvider(
        id=pid,
        provider="mailgun",
        alias=None,
        title=None,
        settings={"api_key": "k", "domain": domain, "host": host, "polling": polling},
        webhook_token=f"tok-{pid}",
        is_default=False,
        origin="api",
        created=now,
        updated=now,
    )


def test_configurations_sharing_a_domain_are_one_group() -> None:
    groups = group_providers(
        [
            _stored("a", "off"),
            _stored("b", "on"),
            _stored("c", "auto", domain="other.test"),
            _stored("d", "off", domain="other.test"),
            _stored("e", "off", domain="quiet.test"),
            _stored("f", "on", host="https://api.eu.mailgun.net"),
        ],
        Providers(),
    )
    by_key = {(g.base_url, g.domain): g for g in groups}
    assert len(groups) == 4
    shared = by_key[("http://h", DOMAIN)]
    assert (shared.mode, shared.provider_id, shared.provider_ids) == ("on", "b", ("a", "b"))
    assert by_key[("http://h", "other.test")].mode == "auto"
    assert by_key[("http://h", "quiet.test")].mode == "off"
    assert by_key[("https://api.eu.mailgun.net", DOMAIN)].mode == "on"


async def test_note_webhook_tracks_unbroken_runs(db_url: str) -> None:
    db = Database(db_url)
    await db.upgrade()
    t0 = utcnow() - timedelta(hours=2)

    async def note(offset_s: float) -> poll_cursors.Cursor:
        async with db.write() as conn:
            await poll_cursors.note_webhook(
                conn, "http://h/", DOMAIN, t0 + timedelta(seconds=offset_s), quiet_s=900
            )
        async with db.read() as conn:
            found = await poll_cursors.get(conn, "http://h", DOMAIN)
        assert found is not None
        return found

    first = await note(0)
    assert first.settled_until == poll_cursors.NEVER  # never polled
    assert first.webhooks_since == first.last_webhook_at == t0
    assert (await note(600)).webhooks_since == t0  # within quiet: the run goes on
    late = await note(100)  # a late retry of an older webhook changes nothing
    assert late.last_webhook_at == t0 + timedelta(seconds=600)
    broken = await note(600 + 901)  # a gap longer than quiet: a new run
    assert broken.webhooks_since == t0 + timedelta(seconds=1501)
    flowing = broken.webhooks_flowing(
        t0 + timedelta(seconds=1501 + 3600), after_s=3600, quiet_s=900
    )
    assert not flowing  # the last webhook is an hour old by then
    assert broken.webhooks_flowing(t0 + timedelta(seconds=1501 + 600), after_s=300, quiet_s=900)
    async with db.write() as conn:
        assert await poll_cursors.advance(conn, "http://h", DOMAIN, t0)
        assert not await poll_cursors.advance(conn, "http://h", DOMAIN, t0 - timedelta(1))
    await db.close()


async def test_a_polled_event_survives_a_writer_holding_a_stale_row(world: World) -> None:
    """The dispatcher keeps a message's row across its call to Mailgun; an event recorded
    meanwhile (by the poller or a webhook) must not be overwritten when it records SENT."""
    provider = await world.add_provider("on")
    mailgun_id = await world.send(provider, "ann@example.test", "msg_race")
    async with world.db.read() as conn:
        stale = await messages_store.get(conn, "msg_race")
    assert stale is not None
    delivered = DeliveryEvent(
        event_id="evt-race",
        kind=EventKind.DELIVERED,
        timestamp=utcnow(),
        recipient="ann@example.test",
        provider_message_id=mailgun_id,
        tidings_id="msg_race",
        domain=DOMAIN,
    )
    async with world.db.write() as conn:
        await record_event(
            conn, delivered, source="poll", provider_id=provider.id, provider_key="mailgun"
        )
    async with world.db.write() as conn:
        await set_facts(conn, stale, with_sent(facts_codec.load(stale.facts), utcnow()))
    assert (await world.message("msg_race")).status == "DELIVERED"


async def test_two_workers_do_not_both_poll_a_domain(world: World, client: Providers) -> None:
    """Scale-out: several worker processes on one database; a lease lets one poll a domain."""
    provider = await world.add_provider("on")
    for n in range(5):
        await world.send(provider, f"two{n}@example.test", f"msg_two_{n}")
    await world.wait_events(5)
    first, second = Poller(world.runtime(), client), Poller(world.runtime(), client)
    await first.tick()
    after_first = world.event_requests()
    assert after_first >= 1
    await second.tick()
    assert world.event_requests() == after_first  # the lease holder polls, the other waits
    for n in range(5):
        assert (await world.message(f"msg_two_{n}")).status == "DELIVERED"
    # When the holder stops, it gives the lease back and the other takes over.
    async with world.db.write() as conn:
        await poll_cursors.release_leases(conn, first.owner)
    await world.send(provider, "two-late@example.test", "msg_two_late")
    await world.wait_events(6)
    await tick_until(second, lambda: world.event_requests() > after_first)
    assert (await world.message("msg_two_late")).status == "DELIVERED"


def test_a_provider_without_an_event_log_is_never_polled() -> None:
    smtp = dataclasses.replace(
        _stored("s", "on"),
        provider="smtp",
        settings={"host": "smtp.example.test", "from_address": "a@example.test"},
    )
    groups = group_providers([smtp, _stored("m", "on")], Providers())
    assert [g.provider_ids for g in groups] == [("m",)]
    assert groups[0].provider == "mailgun"
