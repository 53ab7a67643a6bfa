"""Courier's ``bulk`` resource: create a job, add users to it, run it, follow it.

``POST /bulk`` stores a message definition (a template, named by ``template`` or ``event``,
or inline ``content``), checked at once as ``/send`` would check it. ``POST /bulk/{id}``
adds users, as many calls as it takes, each user checked as a recipient. ``POST
/bulk/{id}/run`` checks the definition again (the template may have changed), commits that
the job runs, answers 204 and then turns every user into its own tracked message through
``/send``'s accept path (``tidings.api.accept``): the same template and brand resolution,
routing and payload, one request id for the whole job. It does so a chunk at a time, each
chunk one transaction that inserts the messages and marks their users, under a lease on the
job: running a job again is harmless. A server that stops mid-run hands the job back and
the next start resumes it; a run whose process died is taken over, once its lease expires,
by the next start or ``run_job``, where it stopped. Counts of ``GET /bulk/{id}`` come from
the users' and their messages' statuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from fastapi import APIRouter, Depends, Header, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy.exc import IntegrityError

from tidings.api import accept, idempotency_keys
from tidings.api.errors import describe_validation
from tidings.api.expansion import Target
from tidings.api.schemas import MessageIn
from tidings.api.unhonoured import refuse_unhonoured
from tidings.domain.errors import ValidationError
from tidings.domain.recipients import is_valid_email, parse_recipient
from tidings.errors import BadRequest, Conflict, NotFound
from tidings.ids import new_id
from tidings.runtime import Runtime, runtime
from tidings.store import bulk as store
from tidings.store import idempotency
from tidings.store import messages as messages_store
from tidings.store.clock import utcnow
from tidings.store.database import Conn, is_database_error
from tidings.store.errors import DatabaseUnavailable
from tidings.store.status_feed import publish_new

log = structlog.get_logger("tidings.bulk")

# Users one add_users call may carry (a 100,000-user job takes 20 calls or more).
MAX_USERS_PER_CALL = 5000
# Users turned into messages per transaction: one multi-row insert each.
CHUNK = 1000
# How long a run holds its job between chunks before another process may take it over.
LEASE = timedelta(seconds=60)
USERS_PAGE = 100
MAX_JOB_ID = 64
MAX_IDEMPOTENCY_KEY = 255  # the column's width
MAX_SEQ = 2**31 - 1  # a user's position is an INTEGER column (32 bits on PostgreSQL)

# Courier's InboundBulkMessage, and how each field maps onto /send's message.
_DEFINITION_FIELDS = ("event", "template", "content", "data", "brand", "locale", "override")
_USER_FIELDS = ("data", "preferences", "profile", "recipient", "to")
_PREFERENCES = (
    "per-user preferences are not honoured yet (they come with the preferences work); remove them"
)
# Profile keys that would make the user someone else than a person with a profile.
_RECIPIENT_ONLY = (
    "user_id",
    "list_id",
    "list_pattern",
    "audience_id",
    "filters",
    "tenant_id",
    "context",
    "data",
)
# Message statuses that mean the user will not get the email.
FAILED = frozenset({"UNDELIVERABLE", "UNROUTABLE", "UNMAPPED", "CANCELED", "FILTERED"})
# An address for checking a definition before any user is known; never stored or sent to.
_PROBE = {"email": "bulk-definition-check@example.com"}


@contextlib.asynccontextmanager
async def _lifespan(app: Any) -> AsyncIterator[None]:
    """This process's runs: resumed at start where another process handed them back (or
    died holding them), cancelled (and handed back) at shutdown while the database is
    still open (the app's own lifespan closes it after this one)."""
    runs: set[asyncio.Task[None]] = set()
    app.state.bulk_runs = runs
    rt: Runtime = app.state.runtime
    try:
        async with rt.db.read() as conn:
            stopped = await store.stopped_runs(conn, utcnow())
        for job in stopped:
            try:
                await _start(rt, job, runs)
            except BadRequest as exc:  # its template is gone: the job says why
                log.warning("bulk job cannot resume", job=job.id, error=exc.message)
    except Exception:
        log.exception("bulk jobs: resuming stopped runs failed; run_job resumes them")
    try:
        yield
    finally:
        for task in list(runs):
            task.cancel()
        await asyncio.gather(*runs, return_exceptions=True)


router = APIRouter(prefix="/bulk", tags=["bulk"], lifespan=_lifespan)


async def _body(request: Request) -> tuple[bytes, dict[str, Any]]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return raw, body


@dataclass(frozen=True, slots=True)
class _Key:
    """An ``Idempotency-Key`` given with a write: its answer is stored with the write."""

    key: str
    request_hash: str
    expires_at: datetime


async def _idempotency(
    request: Request, rt: Runtime, raw: bytes, key: str | None, expiration: str | None
) -> tuple[_Key | None, Response | None]:
    """The key to store the answer under, or the stored answer to replay. The hash covers
    the route as well as the body: the same users added to another job are another write."""
    if key is None:
        return None, None
    if not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise BadRequest(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    route = f"{request.method} {request.url.path}\n".encode()
    request_hash = hashlib.sha256(route + raw).hexdigest()
    async with rt.db.read() as conn:
        stored = await idempotency.find(conn, key)
    if stored is not None:
        return None, idempotency_keys.replay(stored, request_hash)
    return _Key(key, request_hash, idempotency_keys.expiry(expiration, utcnow())), None


async def _write_once(
    rt: Runtime,
    key: _Key | None,
    status: int,
    answer: dict[str, Any],
    work: Callable[[Conn], Awaitable[None]],
) -> Response | None:
    """``work`` in one transaction with the key's answer; the answer of whoever stored the
    key first instead, should that be another request (None: ours was committed)."""
    try:
        async with rt.db.write() as conn:
            if key is not None:
                stored = await idempotency.find(conn, key.key)
                if stored is not None:
                    return idempotency_keys.replay(stored, key.request_hash)
                await idempotency.save(
                    conn,
                    key.key,
                    request_hash=key.request_hash,
                    status_code=status,
                    body=answer,
                    expires_at=key.expires_at,
                )
            await work(conn)
    except IntegrityError:
        # Another request with the same key committed first (PostgreSQL): its answer.
        if key is None:
            raise
        async with rt.db.read() as conn:
            stored = await idempotency.find(conn, key.key)
        if stored is None:
            raise
        return idempotency_keys.replay(stored, key.request_hash)
    return None


def _only(value: Mapping[str, Any], fields: tuple[str, ...], path: str) -> None:
    for key in value:
        if key not in fields:
            at = f"{path}.{key}" if path else key
            raise BadRequest(f"{at}: not a field Courier defines here (known: {', '.join(fields)})")


def _definition(value: Any) -> dict[str, Any]:
    """Courier's bulk message, checked field by field (the accept path checks the rest)."""
    if not isinstance(value, dict):
        raise BadRequest("message is required: the job's message definition, an object")
    _only(value, _DEFINITION_FIELDS, "message")
    for key in ("locale", "override"):
        if value.get(key) not in (None, {}):
            why = (
                "per-locale content is given in a template's locales; send by a template"
                if key == "locale"
                else "give provider overrides per provider in the template or with /send"
            )
            raise BadRequest(f"message.{key}: not supported for bulk jobs ({why})")
    for key in ("event", "template", "brand"):
        if value.get(key) is not None and not isinstance(value[key], str):
            raise BadRequest(f"message.{key} must be a string")
    for key in ("content", "data"):
        if value.get(key) is not None and not isinstance(value[key], dict):
            raise BadRequest(f"message.{key} must be an object")
    if not (value.get("event") or value.get("template") or value.get("content")):
        raise BadRequest(
            "message.event is required: a template's id or alias (or give message.template "
            "or message.content)"
        )
    if value.get("template") and value.get("content"):
        raise BadRequest("message: give either content or template, not both")
    return {k: v for k, v in value.items() if v is not None}


def _send_message(definition: Mapping[str, Any], to: dict[str, Any]) -> dict[str, Any]:
    """The ``/send`` message a bulk job's user gets: ``template`` (else ``event``) names the
    template unless ``content`` is given; ``event`` is then the message's event name."""
    message: dict[str, Any] = {"to": to}
    if definition.get("content") is not None:
        message["content"] = definition["content"]
    else:
        message["template"] = definition.get("template") or definition["event"]
    if definition.get("event") and (definition.get("content") or definition.get("template")):
        message["metadata"] = {"event": definition["event"]}
    if definition.get("data"):
        message["data"] = definition["data"]
    if definition.get("brand"):
        message["brand_id"] = definition["brand"]
    return message


def _in_bulk_terms(text: str) -> str:
    """An accept-path error in the bulk definition's field names."""
    return text.replace("message.brand_id", "message.brand").replace(
        "message.metadata.event", "message.event"
    )


async def _accepted(rt: Runtime, definition: Mapping[str, Any], to: dict[str, Any]) -> Any:
    raw = _send_message(definition, to)
    try:
        msg = MessageIn.model_validate(raw)
    except PydanticValidationError as exc:
        raise BadRequest(_in_bulk_terms(describe_validation(exc.errors()))) from None
    try:
        return await accept.check(msg, raw, rt, utcnow())
    except BadRequest as exc:
        raise BadRequest(_in_bulk_terms(exc.message)) from None


def _object(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{path} must be an object")
    return value


def check_user(value: Any, path: str) -> store.NewUser:
    """One of Courier's InboundBulkMessageUser: the recipient it makes, or a 400 naming
    its first wrong field. ``profile`` fields go into the recipient (its ``email`` is where
    the address goes), ``to`` wins over them, ``data`` is merged over the job's data."""
    if not isinstance(value, dict):
        raise BadRequest(f"{path} must be an object")
    _only(value, _USER_FIELDS, path)
    if value.get("preferences") not in (None, {}):
        raise BadRequest(f"{path}.preferences: {_PREFERENCES}")
    profile = _object(value.get("profile"), f"{path}.profile")
    to = _object(value.get("to"), f"{path}.to")
    data = _object(value.get("data"), f"{path}.data")
    recipient = value.get("recipient")
    if recipient is not None and not isinstance(recipient, str):
        raise BadRequest(f"{path}.recipient must be a string (a user id)")
    try:
        refuse_unhonoured({"to": to})
    except BadRequest as exc:
        raise BadRequest(exc.message.replace("message.to", f"{path}.to", 1)) from None
    for key in ("list_id", "list_pattern", "audience_id"):
        if to.get(key) not in (None, ""):
            raise BadRequest(
                f"{path}.to.{key}: a bulk user is one person; to send to a list or an "
                f"audience, use POST /send with message.to.{key}"
            )
    for key in _RECIPIENT_ONLY:
        if profile.get(key) not in (None, {}, []):
            raise BadRequest(
                f"{path}.profile.{key}: a recipient field, not a profile field; give it in "
                f"{path}.to"
            )
    if profile.get("preferences") not in (None, {}):
        raise BadRequest(f"{path}.profile.preferences: {_PREFERENCES}")
    for where, part in (("profile", profile), ("to", to)):
        email = part.get("email")
        if email is not None and (not isinstance(email, str) or not is_valid_email(email)):
            raise BadRequest(f"{path}.{where}.email is not a valid email address")
    if recipient and to.get("user_id") and recipient != to["user_id"]:
        raise BadRequest(f"{path}.recipient and {path}.to.user_id name different users")
    merged: dict[str, Any] = {**profile, **to}
    if recipient and not merged.get("user_id"):
        merged["user_id"] = recipient
    if data:
        merged["data"] = {**_object(to.get("data"), f"{path}.to.data"), **data}
    named = [merged.get(key) for key in ("email", "user_id")]
    if not any(isinstance(v, str) and v.strip() for v in named):
        raise BadRequest(
            f"{path} needs an address (profile.email) or a user id (to.user_id or recipient) "
            "whose stored profile has one"
        )
    try:
        parse_recipient(merged, path)
    except ValidationError as exc:
        raise BadRequest(str(exc)) from None
    return store.NewUser(user=value, recipient=merged)


def _job_id(job_id: str) -> str:
    if not 0 < len(job_id) <= MAX_JOB_ID:
        raise NotFound(f"there is no bulk job {job_id[:MAX_JOB_ID]!r}")
    return job_id


async def _job(rt: Runtime, job_id: str) -> Any:
    async with rt.db.read() as conn:
        job = await store.get_job(conn, _job_id(job_id))
    if job is None:
        raise NotFound(f"there is no bulk job {job_id!r}")
    return job


_DOC_DEFINITION: dict[str, Any] = {
    "type": "object",
    "properties": {key: {} for key in _DEFINITION_FIELDS},
}


def _doc(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "object", "required": required, "properties": properties}
                }
            },
        }
    }


_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {
        "description": "Conflict: the job has been run (users are added before run_job), or "
        "an Idempotency-Key was reused with another body.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
}


@router.post(
    "",
    status_code=201,
    responses=_CONFLICT,
    openapi_extra=_doc({"message": _DOC_DEFINITION}, ["message"]),
)
async def create_job(
    request: Request,
    rt: Runtime = Depends(runtime),
    idempotency_key: str | None = Header(default=None),
    x_idempotency_expiration: str | None = Header(default=None),
) -> Response:
    """Create a job for a message definition (Courier's ``bulk.create_job``); an
    ``Idempotency-Key`` makes a retry answer the same job."""
    raw, body = await _body(request)
    key, replayed = await _idempotency(request, rt, raw, idempotency_key, x_idempotency_expiration)
    if replayed is not None:
        return replayed
    _only(body, ("message",), "")
    definition = _definition(body.get("message"))
    # Refused now rather than at run: an unknown template, bad content, a missing brand.
    await _accepted(rt, definition, dict(_PROBE))
    job_id = new_id("bulk_")
    answer = {"jobId": job_id}

    async def create(conn: Conn) -> None:
        await store.create_job(conn, job_id, new_id("req_"), definition, utcnow())

    replayed = await _write_once(rt, key, 201, answer, create)
    return replayed or JSONResponse(answer, status_code=201)


@router.post(
    "/{job_id}",
    status_code=204,
    response_class=Response,
    responses=_CONFLICT,
    openapi_extra=_doc({"users": {"type": "array", "items": {"type": "object"}}}, ["users"]),
)
async def add_users(
    request: Request,
    job_id: str = Path(...),
    rt: Runtime = Depends(runtime),
    idempotency_key: str | None = Header(default=None),
    x_idempotency_expiration: str | None = Header(default=None),
) -> Response:
    """Add users to a job that has not run (Courier's ``bulk.add_users``). With an
    ``Idempotency-Key``, a retried call adds its users once."""
    raw, body = await _body(request)
    key, replayed = await _idempotency(request, rt, raw, idempotency_key, x_idempotency_expiration)
    if replayed is not None:
        return replayed
    _only(body, ("users",), "")
    given = body.get("users")
    if not isinstance(given, list) or not given:
        raise BadRequest("users must be a non-empty list of users")
    if len(given) > MAX_USERS_PER_CALL:
        raise BadRequest(
            f"users: at most {MAX_USERS_PER_CALL} users per call, got {len(given)}; add them "
            "in several calls"
        )
    users = [check_user(user, f"users[{i}]") for i, user in enumerate(given)]
    job = await _job(rt, job_id)

    async def add(conn: Conn) -> None:
        if not await store.add_users(conn, job.id, users, utcnow()):
            # Raised inside the transaction: the key's answer is not kept either.
            raise Conflict(
                f"bulk job {job.id!r} has been run; users can only be added before run_job "
                "(create a new job for more)"
            )

    replayed = await _write_once(rt, key, 204, {}, add)
    return replayed or Response(status_code=204)


@router.post("/{job_id}/run", status_code=204, response_class=Response)
async def run_job(
    request: Request, job_id: str = Path(...), rt: Runtime = Depends(runtime)
) -> Response:
    """Start the job (Courier's ``bulk.run_job``); 204 once that is committed. A job that
    runs or has run is left alone, except a run that stopped (its process died, or it
    failed), which is resumed where it stopped."""
    job = await _job(rt, job_id)
    if job.status == store.COMPLETED:
        return Response(status_code=204)
    if job.received == 0:
        raise BadRequest(f"bulk job {job.id!r} has no users: add_users first")
    await _start(rt, job, request.app.state.bulk_runs)
    return Response(status_code=204)


async def _start(rt: Runtime, job: Any, runs: set[asyncio.Task[None]]) -> None:
    """Check the job's message again (its template may have changed: a 400 then), take
    the job unless another run holds it, and turn its users into messages in a task."""
    async with rt.db.read() as conn:
        first = await store.first_pending(conn, job.id)
    accepted = None
    if first is not None:
        accepted = await _accepted(rt, job.definition, dict(first.recipient))
    owner = new_id("run_")
    now = utcnow()
    async with rt.db.write() as conn:
        taken = await store.take(conn, job.id, owner, now, now + LEASE)
        if taken and accepted is None:
            # Every user was made into a message by a run that stopped before saying so.
            await store.finish(conn, job.id, owner, now)
            return
    if taken and accepted is not None:
        task = asyncio.create_task(_run(rt, job.id, job.request_id, accepted, owner))
        runs.add(task)
        task.add_done_callback(runs.discard)


async def _run(
    rt: Runtime, job_id: str, request_id: str, accepted: accept.Accepted, owner: str
) -> None:
    """Turn the job's pending users into messages, a chunk per transaction, until none is
    left or another run has the job. A database fault is waited out (with backoff), as the
    workers do; anything else ends the run in ERROR, which the next run_job resumes."""
    delay = rt.settings.loop_backoff_base_s
    try:
        while True:
            try:
                more = await _chunk(rt, job_id, request_id, accepted, owner)
            except Exception as exc:
                if not (is_database_error(exc) or isinstance(exc, DatabaseUnavailable)):
                    raise
                log.warning(
                    "bulk job: the database failed; trying again",
                    job=job_id,
                    error=type(exc).__name__,
                    retry_in_s=delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, rt.settings.loop_backoff_max_s)
                continue
            delay = rt.settings.loop_backoff_base_s
            if not more:
                return
    except asyncio.CancelledError:
        # Shutting down: hand the job back, so that the next start (or run_job) resumes it.
        try:
            async with rt.db.write() as conn:
                await store.release(conn, job_id, owner, utcnow())
        except Exception:
            log.warning("bulk job: handing the job back failed; its lease will expire", job=job_id)
        raise
    except Exception as exc:
        log.exception("bulk job failed", job=job_id)
        try:
            async with rt.db.write() as conn:
                await store.finish(conn, job_id, owner, utcnow(), error=f"{type(exc).__name__}")
        except Exception:
            log.exception("bulk job: recording the failure failed", job=job_id)


async def _chunk(
    rt: Runtime, job_id: str, request_id: str, accepted: accept.Accepted, owner: str
) -> bool:
    """The next chunk of users as messages, in one transaction; False when the run is over
    (no user left: the job is COMPLETED; or another run has taken the job)."""
    async with rt.db.read() as conn:
        rows = await store.pending(conn, job_id, CHUNK)
    now = utcnow()
    if not rows:
        async with rt.db.write() as conn:
            await store.finish(conn, job_id, owner, now)
        log.info("bulk job completed", job=job_id)
        return False
    # Built outside the transaction, so that other writers wait only for the insert.
    made: list[tuple[str, Target]] = []
    outcomes: list[store.UserOutcome] = []
    for row in rows:
        try:
            recipient = parse_recipient(row.recipient, "user")
        except ValidationError as exc:  # checked when added: only if the rules changed
            outcomes.append(store.UserOutcome(row.seq, store.ERROR, error=str(exc)))
            continue
        message_id = new_id()
        made.append((message_id, Target(recipient, row.recipient)))
        outcomes.append(store.UserOutcome(row.seq, store.ENQUEUED, message_id))
    new, first = accept.build(accepted, request_id, made, now)
    async with rt.db.write() as conn:
        if not await store.renew(conn, job_id, owner, utcnow() + LEASE):
            log.warning("bulk job taken over by another run", job=job_id)
            return False
        stored = await messages_store.insert(conn, new, first)
        await store.record(conn, job_id, outcomes)
        await publish_new(conn, [m.id for m in new], stored)
        await messages_store.notify_queue(conn)
    rt.metrics.accepted.inc(len(new))
    rt.wake()
    return True


def _job_counts(job: Any, users: Mapping[str, int], statuses: Mapping[str, int]) -> dict[str, Any]:
    failed = sum(n for status, n in statuses.items() if status in FAILED)
    return {
        "definition": job.definition,
        "enqueued": users.get(store.ENQUEUED, 0),
        "failures": users.get(store.ERROR, 0) + failed,
        "received": job.received,
        "status": job.status,
        # Tidings' own: the request the messages carry, how many users are still to be
        # made into messages, and the messages by their status now.
        "requestId": job.request_id,
        "pending": users.get(store.PENDING, 0),
        "statuses": dict(sorted(statuses.items())),
        **({"error": job.error} if job.error else {}),
    }


@router.get("/{job_id}")
async def retrieve_job(job_id: str = Path(...), rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    """The job's definition, status and counts (Courier's ``bulk.retrieve_job``)."""
    job = await _job(rt, job_id)
    async with rt.db.read() as conn:
        users = await store.user_counts(conn, job.id)
        statuses = await store.message_counts(conn, job.request_id)
    return {"job": _job_counts(job, users, statuses)}


@router.get("/{job_id}/users")
async def list_users(
    job_id: str = Path(...), cursor: str | None = None, rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    """The job's users in the order added, each with its status and message id (Courier's
    ``bulk.list_users``); ``cursor`` is the ``paging.cursor`` of the page before."""
    job = await _job(rt, job_id)
    after = -1
    if cursor:
        if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 10 or int(cursor) > MAX_SEQ:
            raise BadRequest("cursor is not a cursor this list gave")
        after = int(cursor)
    async with rt.db.read() as conn:
        rows = await store.users(conn, job.id, after, USERS_PAGE + 1)
    more = len(rows) > USERS_PAGE
    rows = rows[:USERS_PAGE]
    items = [
        {
            **row.user,
            "status": row.status,
            "messageId": row.message_id,
            **({"error": row.error} if row.error else {}),
        }
        for row in rows
    ]
    return {
        "items": items,
        "paging": {"cursor": str(rows[-1].seq) if more else None, "more": more},
    }


__all__ = ["MAX_USERS_PER_CALL", "check_user", "router"]
