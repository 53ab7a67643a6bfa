"""The inspection API (JSON, no auth: a local tool): what the sandbox received and did.

``GET/DELETE {prefix}/api/messages``, ``GET {prefix}/api/messages/{id}/events``,
``GET {prefix}/api/messages/{id}/attachments/{n}`` (and ``/inline/{n}``) as raw bytes,
``GET {prefix}/api/stats``, ``GET/POST {prefix}/api/faults``.
"""

from __future__ import annotations

import json
from urllib.parse import quote, unquote

from starlette.requests import Request
from starlette.responses import Response

from tidings.sandbox.core import Sandbox
from tidings.sandbox.errors import json_response
from tidings.sandbox.faults import parse_faults
from tidings.sandbox.messages_api import Endpoint
from tidings.sandbox.state import MessageCopy, Part

DEFAULT_LIMIT = 1000


def message_key(raw: str) -> str:
    """A message id as given in a URL, with or without angle brackets, %-encoded or not."""
    return unquote(raw).strip().strip("<>")


def inspection_endpoints(sandbox: Sandbox) -> dict[str, Endpoint]:
    store = sandbox.store

    async def list_messages(request: Request) -> Response:
        if request.method == "DELETE":
            return json_response({"message": "Messages deleted", "count": sandbox.reset()})
        params = request.query_params
        wanted_id = message_key(params["id"]) if params.get("id") else None
        recipient = params.get("recipient", "").lower()
        domain = params.get("domain")
        try:
            limit = int(params.get("limit", DEFAULT_LIMIT))
        except ValueError:
            return json_response({"message": "limit must be an integer"}, 400)
        source = store.messages_by_id.get(wanted_id, []) if wanted_id else store.messages
        items: list[dict[str, object]] = []
        for copy in reversed(source):
            if recipient and copy.recipient.lower() != recipient:
                continue
            if domain and copy.domain != domain:
                continue
            items.append(copy.describe())
            if len(items) >= limit:
                break
        return json_response(items)

    async def message_events(request: Request) -> Response:
        events = store.events_of_message(message_key(request.path_params["id"]))
        return json_response(events)

    def part_response(copies: list[MessageCopy], which: str, index: int) -> Response:
        if not copies:
            return json_response({"message": "Message not found"}, 404)
        parts: list[Part] = getattr(copies[0], which)
        if not 0 <= index < len(parts):
            return json_response({"message": f"No {which} part {index}"}, 404)
        part = parts[index]
        # Attachment names can be anything: say so in the RFC 6266 encoded form.
        disposition = f"attachment; filename*=UTF-8''{quote(part.filename)}"
        return Response(
            part.data,
            media_type=part.content_type,
            headers={"Content-Disposition": disposition, "X-Sha256": part.sha256},
        )

    async def attachment(request: Request) -> Response:
        copies = store.messages_by_id.get(message_key(request.path_params["id"]), [])
        return part_response(copies, "attachments", request.path_params["n"])

    async def inline(request: Request) -> Response:
        copies = store.messages_by_id.get(message_key(request.path_params["id"]), [])
        return part_response(copies, "inline", request.path_params["n"])

    async def stats(request: Request) -> Response:
        return json_response(store.stats())

    async def faults(request: Request) -> Response:
        if request.method == "POST":
            try:
                body = json.loads(await request.body() or b"{}")
                settings = parse_faults(body)
            except ValueError as error:
                return json_response({"message": str(error)}, 400)
            sandbox.faults.configure(settings)
        return json_response(sandbox.faults.settings.as_json())

    return {
        "messages": list_messages,
        "events": message_events,
        "attachment": attachment,
        "inline": inline,
        "stats": stats,
        "faults": faults,
    }
