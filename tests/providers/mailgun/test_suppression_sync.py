"""Mailgun's suppression lists behind the contract, against the real sandbox on loopback:
paged import (bounces, unsubscribes, complaints), removal from all three, 605/606/607 events
mapped to the suppression they name; and the sync loop riding out a sandbox that is down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.servers import free_port, serve_asgi
from tidings.config import Settings
from tidings.domain.events import EventKind
from tidings.providers.base import RemoteSuppression
from tidings.providers.mailgun.errors import MailgunAPIError
from tidings.providers.mailgun.events import parse_event_item
from tidings.providers.mailgun.provider import MailgunProvider
from tidings.providers.mailgun.settings import MailgunConfig
from tidings.providers.mailgun.suppressions import to_suppression
from tidings.providers.registry import Providers
from tidings.runtime import Runtime
from tidings.sandbox import Sandbox, SandboxSettings
from tidings.store import providers as stored_providers
from tidings.store import suppressions
from tidings.store.database import Database
from tidings.store.events import suppression_for
from tidings.store.keyring import KeyRing
from tidings.workers.supervise import keep_running
from tidings.workers.suppression_sync import SuppressionSync, SuppressionSyncError, sync_once

DOMAIN = "mg.tidings.test"
KEY = "sandbox-api-key"


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(SandboxSettings(domains=[DOMAIN], event_delay=0.01, seed=3))


@pytest.fixture
def sandbox_url(sandbox: Sandbox) -> Iterator[str]:
    with serve_asgi(sandbox.asgi()) as url:
        yield url


def _config(url: str) -> MailgunConfig:
    return MailgunConfig(api_key=KEY, domain=DOMAIN, base_url=url, from_address=None)


def _post(url: str, name: str, records: list[dict[str, Any]]) -> None:
    answer = httpx.post(f"{url}/v3/{DOMAIN}/{name}", json=records, auth=("api", KEY))
    answer.raise_for_status()


def _send(url: str, to: str) -> None:
    answer = httpx.post(
        f"{url}/v3/{DOMAIN}/messages",
        data={"from": f"a@{DOMAIN}", "to": to, "subject": "s", "text": "t"},
        auth=("api", KEY),
    )
    answer.raise_for_status()


async def _all(provider: MailgunProvider, config: MailgunConfig) -> list[RemoteSuppression]:
    assert provider.suppressions is not None
    found: list[RemoteSuppression] = []
    async for page in provider.suppressions.pages(config):
        found += page
    return found


async def test_import_walks_every_page_of_every_list(sandbox_url: str) -> None:
    bounces = [
        {"address": f"b{n:04}@example.test", "code": "550", "error": "No such"} for n in range(1005)
    ]
    _post(sandbox_url, "bounces", bounces[:1000])  # at most 1000 records a call
    _post(sandbox_url, "bounces", bounces[1000:])
    _post(
        sandbox_url,
        "unsubscribes",
        [{"address": "all@example.test"}, {"address": "news@example.test", "tags": ["news"]}],
    )
    _post(sandbox_url, "complaints", [{"address": "spam@example.test"}])
    provider = MailgunProvider()
    try:
        found = await _all(provider, _config(sandbox_url))
    finally:
        await provider.close()
    by_reason: dict[str, list[str]] = {}
    for entry in found:
        by_reason.setdefault(entry.reason, []).append(entry.address)
    assert len(by_reason["bounce"]) == 1005  # two pages of at most 1000
    # Unsubscribed from one tag only: not a reason to suppress every message.
    assert by_reason["unsubscribe"] == ["all@example.test"]
    assert by_reason["complaint"] == ["spam@example.test"]
    first = next(e for e in found if e.address == "b0000@example.test")
    assert first.code == 550 and first.created_at is not None
    assert first.detail == f"on Mailgun's bounce list for {DOMAIN}: 550 No such"


async def test_remove_deletes_from_every_list(sandbox_url: str) -> None:
    for name in ("bounces", "unsubscribes", "complaints"):
        _post(sandbox_url, name, [{"address": "ann@example.test"}])
    provider = MailgunProvider()
    config = _config(sandbox_url)
    try:
        assert provider.suppressions is not None
        removed = await provider.suppressions.remove(config, "ann@example.test")
        assert removed == ["bounces", "unsubscribes", "complaints"]
        assert await provider.suppressions.remove(config, "ann@example.test") == []
        assert await _all(provider, config) == []
    finally:
        await provider.close()


async def test_a_wrong_domain_is_an_error_not_an_empty_list(sandbox_url: str) -> None:
    provider = MailgunProvider()
    config = MailgunConfig(api_key=KEY, domain="other.test", base_url=sandbox_url)
    try:
        assert provider.suppressions is not None
        with pytest.raises(MailgunAPIError, match=r"does not know domain other\.test"):
            await _all(provider, config)
        with pytest.raises(MailgunAPIError, match=r"does not know domain other\.test"):
            await provider.suppressions.remove(config, "ann@example.test")
    finally:
        await provider.close()


def test_to_suppression_reads_old_and_new_shapes() -> None:
    old = to_suppression("unsubscribes", {"address": "A@x.test", "tag": "*"}, DOMAIN)
    assert old is not None and old.address == "a@x.test"
    assert to_suppression("unsubscribes", {"address": "a@x.test", "tag": "news"}, DOMAIN) is None
    assert to_suppression("bounces", {"address": ""}, DOMAIN) is None
    bounce = to_suppression("bounces", {"address": "a@x.test", "code": "x"}, DOMAIN)
    assert bounce is not None and bounce.code is None


@pytest.mark.parametrize(
    ("code", "reason"),
    [(605, "bounce"), (606, "unsubscribe"), (607, "complaint")],
)
def test_605_606_607_name_their_suppression_with_a_hint(code: int, reason: str) -> None:
    item = {
        "id": f"ev-{code}",
        "event": "failed",
        "severity": "permanent",
        "reason": "generic",  # what older events say; the code is what counts
        "timestamp": 1767225600.0,
        "recipient": "ann@example.test",
        "message": {"headers": {"message-id": f"x@{DOMAIN}"}},
        "delivery-status": {"code": code, "message": "Not delivering"},
    }
    event = parse_event_item(item)
    assert event.kind is EventKind.FAILED
    suppression = suppression_for(event)
    assert suppression is not None and suppression[0] == reason and suppression[1] == code
    assert event.hint is not None and str(code) in event.hint
    assert "removes it" in event.hint and "at Mailgun too" in event.hint


async def test_sandbox_events_for_listed_addresses_carry_606_and_607(
    sandbox: Sandbox, sandbox_url: str
) -> None:
    _post(sandbox_url, "unsubscribes", [{"address": "u@example.test"}])
    _post(sandbox_url, "complaints", [{"address": "c@example.test"}])
    for to in ("u@example.test", "c@example.test"):
        _send(sandbox_url, to)
    provider = MailgunProvider()
    try:
        assert provider.events is not None
        deadline = time.monotonic() + 10
        while True:
            page = await provider.events.first_page(_config(sandbox_url), begin=0)
            failed = [parse_event_item(i) for i in page.items if i["event"] == "failed"]
            if len(failed) == 2 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
    finally:
        await provider.close()
    reasons = {e.recipient: suppression_for(e) for e in failed}
    assert reasons["u@example.test"] is not None
    assert reasons["u@example.test"][:2] == ("unsubscribe", 606)
    assert reasons["c@example.test"] is not None
    assert reasons["c@example.test"][:2] == ("complaint", 607)


# -- the sync loop ------------------------------------------------------------------------------


def _runtime(db: Database, **values: object) -> Runtime:
    return Runtime(settings=Settings(**values), db=db, keyring=KeyRing(None, []))  # type: ignore[arg-type]


async def _listed(db: Database) -> list[str]:
    async with db.read() as conn:
        return [s.address for s in await suppressions.list_all(conn)]


async def _add_config(db: Database, url: str) -> None:
    async with db.write() as conn:
        await stored_providers.create(
            conn,
            provider="mailgun",
            settings={"api_key": KEY, "domain": DOMAIN, "host": url},
        )


async def test_sync_imports_and_keeps_first_entries(db: Database, sandbox_url: str) -> None:
    await _add_config(db, sandbox_url)
    async with db.write() as conn:
        await suppressions.add(conn, "known@example.test", reason="complaint", detail="ours")
    _post(
        sandbox_url, "bounces", [{"address": "known@example.test"}, {"address": "new@example.test"}]
    )
    rt = _runtime(db)
    async with Providers() as live:
        added = await sync_once(rt, live)
        assert list(added.values()) == [1]
        assert await sync_once(rt, live) == {next(iter(added)): 0}  # idempotent
    async with db.read() as conn:
        known = await suppressions.get(conn, "known@example.test")
        new = await suppressions.get(conn, "new@example.test")
    assert known is not None and known.reason == "complaint" and known.detail == "ours"
    assert new is not None and new.reason == "bounce"


async def test_sync_survives_the_sandbox_being_down(db: Database, sandbox: Sandbox) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    await _add_config(db, url)
    rt = _runtime(
        db, suppression_sync_interval_s=0.05, loop_backoff_base_s=0.05, loop_backoff_max_s=0.2
    )
    async with Providers() as live:
        # Down: a clear error naming the target and what happened.
        with pytest.raises(SuppressionSyncError, match=f"mailgun {url} {DOMAIN}: could not reach"):
            await sync_once(rt, live)

        stop = asyncio.Event()
        task = asyncio.create_task(
            keep_running(rt, "suppression_sync", lambda: SuppressionSync(rt, live).run(stop), stop)
        )
        try:
            deadline = time.monotonic() + 30
            while rt.loops.get("suppression_sync") is None or (
                rt.loops["suppression_sync"].failing_since is None
            ):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            assert rt.loops["suppression_sync"].last_error == "SuppressionSyncError"
            # Up again (same port, same lists): the loop resumes by itself.
            with serve_asgi(sandbox.asgi(), port=port):
                _post(url, "complaints", [{"address": "late@example.test"}])
                while await _listed(db) != ["late@example.test"]:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.02)
                while rt.loops["suppression_sync"].failing_since is not None:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.02)
        finally:
            stop.set()
            await task
