"""``POST /send``: validate, commit one message per recipient, answer 202 after the commit.

Idempotency follows Courier: the first answer to a key is stored with the messages, in the
same transaction, and replayed for every later request with that key until it expires.
Nothing is stored for a request that fails validation. The checks and the rows are the accept
path's (``tidings.api.accept``), shared with bulk jobs; this route owns the request and its key.
Its commit is ``tidings.api.send_commit``'s: concurrent requests' sends are written together.
"""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy.exc import IntegrityError

from tidings.api import accept, idempotency_keys, send_commit
from tidings.api.errors import describe_validation
from tidings.api.expansion import Target, expand_recipients, is_grouped
from tidings.api.schemas import SendRequest, SendResponse
from tidings.errors import BadRequest
from tidings.ids import new_id
from tidings.runtime import Runtime
from tidings.store import idempotency
from tidings.store.clock import utcnow
from tidings.store.lazy_read import LazyRead

router = APIRouter(tags=["send"])

MAX_IDEMPOTENCY_KEY = 255  # the column's width
IDEMPOTENCY_KEY = "idempotency-key"
EXPIRATION = "x-idempotency-expiration"


def _optional_header(name: str) -> dict[str, Any]:
    """An optional string header, as FastAPI documents one."""
    title = "-".join(part.capitalize() for part in name.split("-"))
    return {
        "name": name,
        "in": "header",
        "required": False,
        "schema": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": title},
    }


# Routing strategies check provider keys as /send does (they import it from here).
_known_provider_keys = accept.known_provider_keys


@router.post(
    "/send",
    status_code=202,
    response_model=SendResponse,
    # The body is read and validated here (its raw bytes are the idempotency hash), and
    # the headers read straight from the request (FastAPI's parameter solving was a tenth
    # of the route's CPU), so FastAPI is only told what they look like.
    openapi_extra={
        "parameters": [_optional_header(IDEMPOTENCY_KEY), _optional_header(EXPIRATION)],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/SendRequest"}}
            },
        },
    },
)
async def send(request: Request) -> Response:
    # Not Depends(runtime): FastAPI runs a plain-function dependency on a worker thread,
    # a thread hop per request for one attribute read.
    rt: Runtime = request.app.state.runtime
    idempotency_key = request.headers.get(IDEMPOTENCY_KEY)
    x_idempotency_expiration = request.headers.get(EXPIRATION)
    # Its size (TIDINGS_MAX_SEND_BODY_BYTES), depth and text were checked on the way in
    # (tidings.api.guard), before it was read.
    raw = await request.body()
    try:
        body = SendRequest.model_validate_json(raw or b"null")
    except PydanticValidationError as exc:
        raise BadRequest(describe_validation(exc.errors())) from None
    msg = body.message
    now = utcnow()
    if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
        raise BadRequest(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    request_hash = hashlib.sha256(raw).hexdigest()
    # Every read this send needs (often none: the workspace defaults are cached) in one
    # read session, opened by the first of them.
    async with LazyRead(rt.db) as reads:
        if idempotency_key:
            stored = await idempotency.find(reads, idempotency_key)
            if stored is not None:
                return idempotency_keys.replay(stored, request_hash)
        raw_message = body.model_dump(mode="json", by_alias=True, exclude_unset=True)["message"]
        accepted = await accept.check(msg, raw_message, rt, now, reads=reads)
        recipients = accepted.recipients
        key_expiry = (
            idempotency_keys.expiry(x_idempotency_expiration, now) if idempotency_key else None
        )
        # At accept time: who is on a list is who is on it now.
        targets: list[Target] = await expand_recipients(
            reads, recipients, limit=rt.settings.max_send_recipients
        )
    ids = [new_id() for _ in targets]
    # One message to one named recipient is answered by its id; anything else (several,
    # or a list, which may reach any number, none included) by a request id.
    single = len(ids) == 1 and not is_grouped(recipients)
    request_id = ids[0] if single else new_id("req_")
    new, first = accept.build(accepted, request_id, list(zip(ids, targets, strict=True)), now)
    answer = {"requestId": request_id}
    prepared = send_commit.Send(
        new=new,
        first=first,
        request_id=request_id,
        record_request=not single,
        idempotency_key=idempotency_key or None,
        request_hash=request_hash,
        answer=answer,
        key_expiry=key_expiry,
    )
    try:
        # Committed (with the sends of concurrent requests) before the answer.
        replayed = await send_commit.commit(rt.db, prepared)
    except IntegrityError:
        # Another request with the same key committed first (PostgreSQL): replay its answer.
        if not idempotency_key:
            raise
        async with rt.db.read() as conn:
            replayed = await idempotency.find(conn, idempotency_key)
        if replayed is None:
            raise
    if replayed is not None:
        return idempotency_keys.replay(replayed, request_hash)
    rt.metrics.accepted.inc(len(new))
    rt.wake()
    return JSONResponse(answer, status_code=202)
