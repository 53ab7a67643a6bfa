"""Providers' signed webhooks (Mailgun's), received at each configuration's unguessable
URL, ``/webhooks/<provider key>/<token>``; the provider's webhook reader verifies and parses.

Every check happens before anything is written, in the transaction that then records the
webhook (the configuration is read there too: one trip to the database per webhook): the
URL's configuration, the signature (with the configuration's signing key; none configured →
refused, never fail open), the timestamp window, the domain, and replay (a token is
accepted once). A refusal answers 406 (Mailgun stops retrying) or 401
(a key problem Mailgun should keep retrying through while someone fixes it) and changes
nothing.

An accepted webhook is answered 200 only once it is committed (token, history, status,
status feed): Mailgun retries anything else, and a retry of one that never committed finds
its token unspent. On SQLite the webhooks of a burst share group commits
(``Database.grouped``: one transaction, one trip to the writer thread, each webhook run
again alone if a neighbour fails); a database fault answers 503 and Mailgun retries.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from tidings.domain.events import DeliveryEvent
from tidings.providers.base import Provider, ProviderSettings, Refusal
from tidings.providers.registry import Providers, UnknownProvider
from tidings.runtime import Runtime
from tidings.store import events as event_store
from tidings.store import poll_cursors, providers
from tidings.store.clock import utcnow
from tidings.store.database import Conn, Database
from tidings.store.providers import StoredProvider

router = APIRouter(tags=["webhooks"])
log = structlog.get_logger("tidings.webhooks")

# When this process last recorded a webhook for a (host, domain) poll cursor. Polling's
# auto mode needs only "webhooks are arriving", to well within its quiet time (minutes):
# recording it at most once a second spares a burst three statements per webhook.
# Per database (a process may serve several, as tests do).
NOTE_EVERY_S = 1.0
_noted: weakref.WeakKeyDictionary[Database, dict[tuple[str, str], float]] = (
    weakref.WeakKeyDictionary()
)


# The parsed settings of each configuration webhooks came for, with the stored settings they
# were parsed from: the row is still read for every webhook (a changed signing key counts
# at once), only the pydantic validation of an unchanged one is skipped.
# Keyed by (provider key, configuration id); a few configurations at most, bounded anyway.
_parsed: dict[tuple[str, str], tuple[dict[str, Any], ProviderSettings]] = {}
_PARSED_MAX = 256
_OK = b'{"message":"ok"}'


def _settings_of(impl: Provider, stored: StoredProvider) -> ProviderSettings:
    """``impl.parse_settings(stored.settings)``, parsed again only when they changed; raises
    pydantic's ValidationError like it."""
    key = (stored.provider, stored.id)
    known = _parsed.get(key)
    if known is not None and known[0] == stored.settings:
        return known[1]
    settings = impl.parse_settings(stored.settings)
    if len(_parsed) >= _PARSED_MAX:
        _parsed.clear()
    _parsed[key] = (dict(stored.settings), settings)
    return settings


def _note_due(db: Database, cursor: tuple[str, str]) -> datetime | None:
    """The time to record for ``cursor`` with this webhook, or None if recorded just now."""
    last = _noted.get(db, {}).get(cursor)
    if last is not None and time.monotonic() - last < NOTE_EVERY_S:
        return None
    return utcnow()


def _refuse(rt: Runtime, status: int, code: str, message: str, **context: object) -> JSONResponse:
    rt.metrics.webhooks_refused.labels(code).inc()
    log.warning("webhook refused", code=code, reason=message, **context)
    return JSONResponse({"message": message, "type": "invalid_request_error"}, status_code=status)


@dataclass(frozen=True, slots=True)
class _Refused:
    status: int
    code: str
    message: str
    provider_id: str | None = None


@dataclass(frozen=True, slots=True)
class _Ingested:
    stored: StoredProvider
    event: DeliveryEvent
    recorded: event_store.Recorded
    cursor: tuple[str, str]
    noted: bool


async def provider_webhook(request: Request) -> Response:
    # A plain Starlette route, not a FastAPI one: the busiest route has no parameters to
    # validate or dependencies to solve, and FastAPI's machinery for them (per request) cost
    # more than the route's own work. Path parameters are plain strings either way.
    provider_key: str = request.path_params["provider_key"]
    url_token: str = request.path_params["token"]
    rt: Runtime = request.app.state.runtime
    live: Providers = request.app.state.providers
    # At most TIDINGS_MAX_WEBHOOK_BODY_BYTES, refused (413) while it streamed in, and JSON
    # checked for depth and text (tidings.api.guard).
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    now = time.time()

    async def ingest(conn: Conn) -> _Ingested | _Refused:
        # Touches only the database and this webhook: on SQLite it shares a transaction
        # with the other writes arriving now, and is run again alone if a neighbour fails.
        # The configuration is read in the same transaction as everything else (one trip to
        # the database instead of two), and every check is made before anything is written:
        # a refusal writes nothing.
        stored = await providers.by_webhook_token(conn, url_token)
        if stored is None or stored.provider != provider_key:
            # Not a URL this server gave out: the provider should stop trying it.
            return _Refused(406, "unknown-url", "no provider configuration has this webhook URL")
        try:
            impl = live.get(stored.provider)
            settings = _settings_of(impl, stored)
        except (UnknownProvider, ValidationError) as exc:
            return _Refused(406, "bad-configuration", str(exc), stored.id)
        if impl.webhooks is None:
            return _Refused(406, "unknown-url", f"{impl.name} posts no webhooks", stored.id)
        read = impl.webhooks.read(
            settings, body, content_type, now=now, window_s=rt.settings.webhook_window_s
        )
        if isinstance(read, Refusal):
            return _Refused(read.http_status, read.code, read.message, stored.id)
        if not await event_store.accept_token_once(conn, read.token):
            # A replay: this transaction only tried to insert the token.
            return _Refused(406, "replayed", "webhook token was already used (a replay)", stored.id)
        recorded = await event_store.record_event(
            conn, read.event, source="webhook", provider_id=stored.id, provider_key=stored.provider
        )
        config = settings.to_config()
        cursor = (config.target, config.domain or "")
        note = _note_due(rt.db, cursor)
        if note is not None:
            await poll_cursors.note_webhook(
                conn, *cursor, note, quiet_s=rt.settings.poll_auto_quiet_s
            )
        return _Ingested(stored, read.event, recorded, cursor, note is not None)

    # Either way this returns once committed: the 200 below promises the webhook is durable.
    # SQLite has one writer: webhooks arriving together share its transactions (group
    # commit, the whole group in one trip to its thread). PostgreSQL takes concurrent
    # transactions, which measured faster than a group's statements one after another.
    if rt.db.is_sqlite:
        outcome = await rt.db.grouped(ingest)
    else:
        async with rt.db.write() as conn:
            outcome = await ingest(conn)
    if isinstance(outcome, _Refused):
        context = {"provider": outcome.provider_id} if outcome.provider_id else {}
        return _refuse(rt, outcome.status, outcome.code, outcome.message, **context)
    if outcome.noted:
        _noted.setdefault(rt.db, {})[outcome.cursor] = time.monotonic()
    recorded = outcome.recorded
    rt.metrics.events.labels(outcome.event.kind.value, "webhook").inc()
    log.info(
        "webhook accepted",
        provider=outcome.stored.id,
        event_kind=outcome.event.kind.value,
        message_id=recorded.message_id,
        duplicate=not recorded.new,
        status=recorded.status,
    )
    return Response(_OK, media_type="application/json")


router.add_route(
    "/webhooks/{provider_key}/{token}", provider_webhook, methods=["POST"], include_in_schema=False
)
