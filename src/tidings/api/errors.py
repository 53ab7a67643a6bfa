"""Courier's error body for every failure: ``{"message": ..., "type": ...}``.

Validation errors name the field path the way a person reads it:
``message.to[1].email: value is not a valid email address``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tidings.errors import TidingsError

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


def install(app: FastAPI) -> None:
    @app.exception_handler(TidingsError)
    async def _tidings(_request: Request, exc: TidingsError) -> JSONResponse:
        return error_response(exc.status_code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, describe_validation(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "error"
        if exc.status_code == 404 and message == "Not Found":
            message = "Not Found"
        return error_response(exc.status_code, message, getattr(exc, "headers", None))
