"""The two outer layers every HTTP request passes through (pure ASGI, no buffering by us
beyond a route's size limit).

* :class:`RequestGuard` (outermost): gives each request an id (a sane incoming
  ``X-Request-Id``, else a new one), binds it to every log line of the request, puts it on
  the answer, and turns anything that escapes the app into Courier's JSON body: a database
  fault → 503 with ``Retry-After``, anything else → 500 whose ``request_id`` is in the log.
  Starlette's plain-text "Internal Server Error" is never reached.
* :class:`BodyGuard`: refuses a body larger than its route's limit with 413, on
  ``Content-Length`` or while it streams in, before the app buffers it; refuses NUL in the
  URL; and checks a JSON body once for every route (:func:`tidings.domain.storable.check_json`:
  depth, NUL, lone surrogates) so that no route, parser or store sees what it cannot handle.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from tidings.api.errors import error_body, fault_response, unforeseen_response
from tidings.domain.errors import ValidationError
from tidings.domain.storable import MAX_DEPTH, check_json
from tidings.ids import new_id
from tidings.store.errors import Fault, classify

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = structlog.get_logger("tidings.api")

REQUEST_ID_HEADER = "x-request-id"
_SANE_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_FAULT_LOG_EVERY_S = 10.0


def request_id_of(scope: Scope) -> str | None:
    value = scope.get("state", {}).get("request_id")
    return value if isinstance(value, str) else None


class RequestGuard:
    """Request ids, and a JSON answer for whatever the app lets escape."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._fault_logged: dict[Fault, float] = {}
        self._fault_count: dict[Fault, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = Headers(scope=scope).get(REQUEST_ID_HEADER, "")
        request_id = incoming if _SANE_ID.fullmatch(incoming) else new_id("req_")
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as exc:
                fault = classify(exc)
                if fault is not None:
                    self._log_fault(fault, scope, exc)
                else:
                    log.error(
                        "unhandled error",
                        method=scope.get("method"),
                        path=scope.get("path"),
                        answered=started,
                        exc_info=exc,
                    )
                if started:
                    # The status line is out; the server closes the connection, the client
                    # sees a truncated answer rather than a wrong one.
                    return
                response = (
                    fault_response(fault) if fault is not None else unforeseen_response(request_id)
                )
                await response(scope, receive, send_with_id)

    def _log_fault(self, fault: Fault, scope: Scope, exc: Exception) -> None:
        """Once per fault kind every few seconds: an outage must not flood the log."""
        self._fault_count[fault] = self._fault_count.get(fault, 0) + 1
        now = time.monotonic()
        if now - self._fault_logged.get(fault, -_FAULT_LOG_EVERY_S) < _FAULT_LOG_EVERY_S:
            return
        self._fault_logged[fault] = now
        log.warning(
            "database fault: answering 503",
            fault=fault.value,
            requests=self._fault_count.pop(fault),
            path=scope.get("path"),
            error=f"{type(exc).__name__}: {exc}"[:300],
        )


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes its limit; FastAPI answers it
    like any HTTP error (413, Courier's body)."""

    def __init__(self, limit: int, setting: str) -> None:
        # Closing is the only way to stop a client that is still sending.
        super().__init__(
            413,
            f"the request body is larger than {_size(limit)}, {setting}",
            headers={"connection": "close"},
        )


def _size(n: int) -> str:
    if n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MB"
    if n % 1024 == 0:
        return f"{n // 1024} KB"
    return f"{n} bytes"


@dataclass(frozen=True)
class BodyLimits:
    """Largest body per path prefix (the first match wins), else ``default``."""

    default: int
    by_prefix: tuple[tuple[str, int, str], ...]  # (prefix, limit, the setting to raise)
    exempt: tuple[str, ...] = ()

    def for_path(self, path: str) -> tuple[int, str] | None:
        if any(path == p or path.startswith(p + "/") for p in self.exempt):
            return None
        for prefix, limit, setting in self.by_prefix:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return limit, f"the limit of {prefix} (set by {setting})"
        return self.default, "the limit (set by TIDINGS_MAX_BODY_BYTES)"


_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _refusal(status: int, message: str) -> JSONResponse:
    headers = {"connection": "close"} if status == 413 else None
    return JSONResponse(error_body(status, message), status_code=status, headers=headers)


class BodyGuard:
    """Size limits before reading, and the one check of every JSON body."""

    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rule = self.limits.for_path(scope["path"])
        if rule is None:
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            await _refusal(400, "the URL contains a NUL character (%00)")(scope, receive, send)
            return
        limit, setting = rule
        headers = Headers(scope=scope)
        length_header = headers.get("content-length")
        if length_header is not None:
            if not length_header.isdigit() or len(length_header) > 18:
                await _refusal(400, "Content-Length is not a number")(scope, receive, send)
                return
            if int(length_header) > limit:
                too_large = BodyTooLarge(limit, setting)
                await _refusal(413, too_large.detail)(scope, receive, send)
                return
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        if not chunked and length_header in (None, "0"):
            await self.app(scope, receive, send)
            return
        content_type = headers.get("content-type", "").lower()
        if content_type.startswith(_FORM_TYPES):
            await self.app(scope, _counting(receive, limit, setting), send)
            return
        # Anything else may be JSON (/send parses whatever it gets): read it, within the
        # limit, check it once, and hand the same bytes on.
        try:
            body = await _read_all(receive, limit, setting)
        except BodyTooLarge as exc:
            await _refusal(413, exc.detail)(scope, receive, send)
            return
        except _Disconnected:
            return
        problem = json_problem(body)
        if problem is not None:
            await _refusal(400, problem)(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)


class _Disconnected(Exception):
    pass


async def _read_all(receive: Receive, limit: int, setting: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit, setting)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _counting(receive: Receive, limit: int, setting: str) -> Receive:
    size = 0

    async def counted() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise BodyTooLarge(limit, setting)
        return message

    return counted


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def json_problem(body: bytes) -> str | None:
    """Why a JSON body cannot be accepted (too deep, NUL, lone surrogate), naming the field;
    ``None`` when it is fine or is not JSON at all (the route says what it expected)."""
    if body.lstrip()[:1] not in (b"{", b"["):
        return None
    try:
        value = json.loads(body)
    except RecursionError:
        return f"the request body is nested deeper than {MAX_DEPTH} levels"
    except ValueError:
        return None
    try:
        check_json(value)
    except ValidationError as exc:
        return str(exc)
    return None
