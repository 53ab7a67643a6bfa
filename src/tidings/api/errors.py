"""Courier's error body for every failure: ``{"message": ..., "type": ...}``.

Validation errors name the field path the way a person reads it:
``message.to[1].email: value is not a valid email address``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from tidings.errors import TidingsError
from tidings.ids import new_id
from tidings.store.errors import Fault, classify

log = structlog.get_logger("tidings.api")

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "authorization_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def error_body(status: int, message: str) -> dict[str, str]:
    return {"message": message, "type": _TYPES.get(status, "api_error")}


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(status, message), status_code=status, headers=headers)


# What a client is told, and how long to wait, when the database cannot take the request.
_FAULTS: dict[Fault, tuple[str, int]] = {
    Fault.UNAVAILABLE: (
        "The database is unavailable right now; nothing was stored. Try again shortly.",
        5,
    ),
    Fault.FULL: (
        "The database is out of disk space; nothing was stored. Try again later.",
        30,
    ),
    Fault.READ_ONLY: (
        "The database is read-only (a standby, or a read-only file); nothing was stored. "
        "Try again later.",
        30,
    ),
}


def unforeseen_response(request_id: str) -> JSONResponse:
    """500 for a bug: the id to quote, which is in the log line with the traceback."""
    body = {
        **error_body(500, f"Internal error; it was logged with request id {request_id}"),
        "request_id": request_id,
    }
    return JSONResponse(body, status_code=500)


def fault_response(fault: Fault) -> JSONResponse:
    """503 with ``Retry-After``: the request was fine, the database could not take it."""
    message, retry_after = _FAULTS[fault]
    return error_response(503, message, headers={"Retry-After": str(retry_after)})


def field_path(loc: Sequence[int | str]) -> str:
    """('body', 'message', 'to', 1, 'email') → 'message.to[1].email'."""
    parts: list[str] = []
    for item in loc:
        if item in ("body", "query", "path", "header"):
            continue
        if isinstance(item, int):
            if parts:
                parts[-1] += f"[{item}]"
            else:
                parts.append(f"[{item}]")
        elif str(item).startswith(("function-", "tagged-union", "union")):
            continue
        else:
            parts.append(str(item))
    return ".".join(parts)


def describe_validation(errors: Sequence[Any]) -> str:
    seen: list[str] = []
    for err in errors:
        path = field_path(err.get("loc", ()))
        msg = str(err.get("msg", "is invalid"))
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if err.get("type") == "missing":
            text = f"{path} is required"
        elif err.get("type") == "json_invalid":
            text = "the request body is not valid JSON"
        else:
            text = f"{path}: {msg}" if path else msg
        if text not in seen:
            seen.append(text)
    return "; ".join(seen[:5]) or "invalid request"


class ErrorBody(BaseModel):
    """Courier's error body. ``request_id`` comes with a 500 only: quote it to the operator,
    who finds the error in the log by it."""

    message: str = Field(description="What was wrong, naming the field when there is one.")
    type: str = Field(description="Courier's error type, e.g. invalid_request_error.")
    request_id: str | None = Field(default=None, description="With a 500: its log line's id.")


_DESCRIPTIONS = {
    400: "Invalid request; the message names the field.",
    401: "Missing or wrong API key.",
    404: "No such resource.",
    409: "Conflict (e.g. an Idempotency-Key reused with a different body).",
    413: "Request body larger than this route's limit.",
    429: "Too many failed attempts; retry after the Retry-After header.",
    500: "Unforeseen error; logged with the request id given in the body.",
    503: "The database is unavailable, full or read-only; retry after Retry-After.",
}
_ERROR_REF = "#/components/schemas/ErrorBody"
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer"},
    }
}


def _error_codes(path: str, method: str, conflicts: Sequence[str]) -> list[int]:
    codes = {400, 401, 429, 500, 503}  # every documented route is behind the API key
    if "{" in path:
        codes.add(404)
    if method in ("post", "put", "patch"):
        codes.add(413)
        if any(path == p or path.startswith(p + "/") for p in conflicts):
            codes.add(409)
    return sorted(codes)


def document(
    app: FastAPI,
    *,
    conflicts: Sequence[str] = ("/send", "/providers"),
    models: Sequence[type[BaseModel]] = (),
) -> None:
    """Declare in the OpenAPI schema the error answers each route can give, with
    :class:`ErrorBody`: every route 400 (the URL, a header, the body), 401 and 429 (the API
    key), 500 and 503 (the database); routes with a path parameter 404; routes that take a
    body 413; ``conflicts`` 409. FastAPI's 422 is dropped: validation errors answer 400.
    ``models`` are added to the components (bodies a route reads itself refer to them)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        documented: list[type[BaseModel]] = [ErrorBody, *models]
        for model in documented:
            generated = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(generated.pop("$defs", {}))
            components[model.__name__] = generated
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                if not isinstance(operation, dict):
                    continue
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                for code in _error_codes(path, method, conflicts):
                    entry: dict[str, Any] = {
                        "description": _DESCRIPTIONS[code],
                        "content": {"application/json": {"schema": {"$ref": _ERROR_REF}}},
                    }
                    if code in (429, 503):
                        entry["headers"] = _RETRY_AFTER
                    responses.setdefault(str(code), entry)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI) -> None:
    @app.exception_handler(TidingsError)
    async def _tidings(_request: Request, exc: TidingsError) -> JSONResponse:
        return error_response(exc.status_code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, describe_validation(exc.errors()))

    @app.exception_handler(Exception)
    async def _unforeseen(request: Request, exc: Exception) -> JSONResponse:
        # Reached only by a failure outside tidings.api.guard.RequestGuard (which answers
        # everything inside it): Starlette's last handler, so never its plain-text 500.
        fault = classify(exc)
        if fault is not None:
            return fault_response(fault)
        request_id = request.scope.get("state", {}).get("request_id") or new_id("req_")
        log.error("unhandled error", request_id=request_id, exc_info=exc)
        return unforeseen_response(request_id)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "error"
        if exc.status_code == 404 and message == "Not Found":
            message = "Not Found"
        return error_response(exc.status_code, message, getattr(exc, "headers", None))
