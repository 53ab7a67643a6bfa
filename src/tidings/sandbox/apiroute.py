"""The plumbing every Mailgun management endpoint of the sandbox shares: the API key check,
the per-route request counters, Mailgun's error answers, and reading form fields.

A handler returns ``(body, status)`` or raises :class:`MailgunError`; the wrapper does the
rest, so each resource module holds only what the resource means.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import parse_qsl

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from tidings.sandbox.auth import ApiKeyCheck
from tidings.sandbox.core import Sandbox
from tidings.sandbox.errors import MailgunError, forbidden, json_response
from tidings.sandbox.messages_api import Endpoint

Handler = Callable[[Request], Awaitable[tuple[object, int]]]
Fields = list[tuple[str, str]]

_TRUE = ("yes", "true", "1")
_FALSE = ("no", "false", "0")


def mailgun_endpoint(sandbox: Sandbox, route: str, handler: Handler) -> Endpoint:
    """Wrap ``handler``: ``route`` names its counter, ``{method}`` replaced per request."""
    store = sandbox.store
    auth = ApiKeyCheck(sandbox.settings.api_key)

    async def endpoint(request: Request) -> Response:
        name = route.replace("{method}", request.method)
        if not auth.allows(request.headers.get("authorization")):
            store.count_request(name, 401)
            return forbidden()
        try:
            body, status = await handler(request)
        except MailgunError as error:
            store.count_request(name, error.status)
            return error.response()
        store.count_request(name, status)
        if status == 204:
            return Response(status_code=204)
        return json_response(body, status)

    return endpoint


async def read_fields(request: Request) -> Fields:
    """The form fields of a request (urlencoded or multipart), files refused by name."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        async with request.form() as form:
            fields: Fields = []
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    raise MailgunError(400, f"Unexpected file parameter: {key}")
                fields.append((key, value))
            return fields
    body = await request.body()
    return parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)


def query_fields(request: Request) -> Fields:
    return list(request.query_params.multi_items())


def refuse_unknown(fields: Iterable[tuple[str, str]], allowed: Iterable[str]) -> None:
    """Nothing is accepted and ignored: a parameter the sandbox does not model is a 400."""
    known = set(allowed)
    for key, _ in fields:
        if key not in known:
            raise MailgunError(400, f"Unsupported parameter: {key}")


def one(fields: Fields, name: str) -> str | None:
    """The value of a parameter given at most once (twice is a 400 naming it)."""
    values = [value for key, value in fields if key == name]
    if len(values) > 1:
        raise MailgunError(400, f"Parameter {name} may be given only once")
    return values[0] if values else None


def boolean(raw: str, name: str) -> bool:
    """Mailgun's booleans: ``yes``/``no``, ``true``/``false`` (any case)."""
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise MailgunError(400, f"Invalid {name}: '{raw}' is not a boolean (yes, no, true, false)")


def integer(raw: str | None, name: str, default: int, low: int, high: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise MailgunError(400, f"Invalid {name}: '{raw}' is not an integer") from None
    if not low <= value <= high:
        raise MailgunError(400, f"Invalid {name}: {value} is not between {low} and {high}")
    return value
