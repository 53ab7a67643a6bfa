"""The one outer layer every HTTP request passes through (pure ASGI, no buffering by us
beyond a route's size limit), in one pass over the request's headers:

* request ids: each request gets one (a sane incoming ``X-Request-Id``, else a new one),
  bound to every log line of the request and put on the answer;
* a JSON answer in Courier's format for anything that escapes the app: a database fault →
  503 with ``Retry-After``, anything else → 500 whose ``request_id`` is in the log.
  Starlette's plain-text "Internal Server Error" is never reached;
* body limits: a body larger than its route's limit is refused with 413, on
  ``Content-Length`` or while it streams in, before the app buffers it; NUL in the URL is
  refused; and a JSON body is checked once for every route
  (:func:`tidings.domain.storable.check_json`: depth, NUL, lone surrogates) so that no
  route, parser or store sees what it cannot handle. A body that plainly has none of those
  (a scan of its bytes, see :func:`json_problem`) is not parsed here at all: the route's
  parse is the only one.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import structlog
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from tidings.api.errors import error_body, fault_response, unforeseen_response
from tidings.domain.errors import ValidationError
from tidings.domain.storable import MAX_DEPTH, check_json
from tidings.store.errors import Fault, classify

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = structlog.get_logger("tidings.api")

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_RAW = REQUEST_ID_HEADER.encode()
_SANE_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_FAULT_LOG_EVERY_S = 10.0


def request_id_of(scope: Scope) -> str | None:
    value = scope.get("state", {}).get("request_id")
    return value if isinstance(value, str) else None


class RequestIds:
    """Request ids in the format of :func:`tidings.ids.new_id` (``req_``, 12 hex digits of
    milliseconds, 20 random hex digits), the random part cut from a buffer the OS's random
    source fills 200 ids at a time: one ``getrandom`` call per request cost more than the
    rest of the id."""

    _PER_FILL = 200

    def __init__(self) -> None:
        self._pool = ""
        self._at = 0

    def new(self) -> str:
        if self._at >= len(self._pool):
            self._pool = os.urandom(10 * self._PER_FILL).hex()
            self._at = 0
        at = self._at
        self._at = at + 20
        return f"req_{int(time.time() * 1000):012x}{self._pool[at : at + 20]}"


class RequestGuard:
    """Request ids, body limits and the JSON check, and a JSON answer for whatever the app
    lets escape."""

    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits
        self._ids = RequestIds()
        self._fault_logged: dict[Fault, float] = {}
        self._fault_count: dict[Fault, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # One pass over the raw headers for everything this layer reads (names are lower
        # case in ASGI).
        incoming = length_header = content_type = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                if length_header is None:
                    length_header = value.decode("latin-1")
            elif name == b"content-type":
                if content_type is None:
                    content_type = value.decode("latin-1").lower()
            elif name == b"transfer-encoding":
                chunked = chunked or b"chunked" in value.lower()
            elif name == _REQUEST_ID_RAW and incoming is None:
                incoming = value.decode("latin-1")
        if incoming is not None and _SANE_ID.fullmatch(incoming):
            request_id = incoming
        else:
            request_id = self._ids.new()
        scope.setdefault("state", {})["request_id"] = request_id
        raw_id = request_id.encode("latin-1")
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [
                    (k, v) for k, v in message.get("headers", ()) if k.lower() != _REQUEST_ID_RAW
                ]
                headers.append((_REQUEST_ID_RAW, raw_id))
                message["headers"] = headers
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self._guarded(
                    scope, receive, send_with_id, length_header, content_type, chunked
                )
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

    async def _guarded(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        length_header: str | None,
        content_type: str | None,
        chunked: bool,
    ) -> None:
        """The body limits and the JSON check, then the app."""
        rule = self.limits.for_path(scope["path"])
        if rule is None:
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            await _refusal(400, "the URL contains a NUL character (%00)")(scope, receive, send)
            return
        limit, setting = rule
        if length_header is not None:
            if not length_header.isdigit() or len(length_header) > 18:
                await _refusal(400, "Content-Length is not a number")(scope, receive, send)
                return
            if int(length_header) > limit:
                too_large = BodyTooLarge(limit, setting)
                await _refusal(413, too_large.detail)(scope, receive, send)
                return
        if not chunked and length_header in (None, "0"):
            await self.app(scope, receive, send)
            return
        if content_type is not None and content_type.startswith(_FORM_TYPES):
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


# A ``\u0000`` escape, or one of a surrogate (``\ud800``-``\udfff``): NUL or a possible lone
# surrogate, worth a closer look. (An escaped backslash before a ``u`` matches too: harmless.)
_ESCAPE_OF_CONCERN = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")


def _plainly_fine(body: bytes) -> bool:
    """True when ``body``'s bytes rule out all three problems without parsing it: at most
    ``MAX_DEPTH`` brackets in all (so no deeper nesting); no NUL byte (a raw NUL is not
    JSON text, but UTF-16/32 text has them: it is looked at closely); no UTF-8 surrogate
    (lead byte 0xED: json decodes bytes with ``surrogatepass``); no ``\\u0000`` or surrogate
    escape. Over-cautious is fine: what it does not clear is parsed and checked."""
    return (
        body.count(b"{") + body.count(b"[") <= MAX_DEPTH
        and b"\x00" not in body
        and b"\xed" not in body
        and _ESCAPE_OF_CONCERN.search(body) is None
    )


def json_problem(body: bytes) -> str | None:
    """Why a JSON body cannot be accepted (too deep, NUL, lone surrogate), naming the field;
    ``None`` when it is fine or is not JSON at all (the route says what it expected)."""
    if body.lstrip()[:1] not in (b"{", b"["):
        return None
    if _plainly_fine(body):
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
