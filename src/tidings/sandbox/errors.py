"""Mailgun's error answers: a status, a human message, and sometimes headers."""

from __future__ import annotations

import json

from starlette.responses import PlainTextResponse, Response


class MailgunError(Exception):
    """An answer Mailgun would give instead of doing what was asked."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}

    def response(self) -> Response:
        return json_response({"message": self.message}, self.status, self.headers)


def json_response(
    body: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A compact JSON answer; json.dumps directly is cheaper than JSONResponse's options."""
    return Response(
        json.dumps(body, ensure_ascii=False).encode(),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def forbidden() -> Response:
    """Mailgun's 401 carries the bare text ``Forbidden``, not JSON."""
    return PlainTextResponse("Forbidden", status_code=401)


def domain_not_found(domain: str) -> MailgunError:
    return MailgunError(404, f"Domain not found: {domain}")
