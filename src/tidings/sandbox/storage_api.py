"""Stored messages: the ``storage.url`` that events hand out.

``GET /v3/domains/{domain}/messages/{key}`` answers the message in Mailgun's JSON shape
(``Accept: message/rfc2822`` adds the whole MIME as ``body-mime``); ``POST`` with ``to``
sends it again (a new message id, new events); ``.../attachments/{n}`` is an attachment's
bytes. A message answers for :data:`core.RETENTION_SECONDS` (Mailgun's 3 days) after it
was accepted, then 404 like one that never was.
"""

from __future__ import annotations

import time
from dataclasses import replace

from starlette.requests import Request
from starlette.responses import Response

from tidings.sandbox.auth import ApiKeyCheck
from tidings.sandbox.core import Sandbox
from tidings.sandbox.errors import MailgunError, domain_not_found, forbidden, json_response
from tidings.sandbox.eventshape import bare_content_type
from tidings.sandbox.forms import SendRequest, parse_addresses, read_form
from tidings.sandbox.messages_api import Endpoint
from tidings.sandbox.mime import build_mime
from tidings.sandbox.state import JSON, MessageCopy
from tidings.sandbox.urls import api_base

ROUTE = "/v3/domains/{domain}/messages/{key}"


def message_not_found() -> MailgunError:
    return MailgunError(404, "Message not found")


def storage_endpoints(sandbox: Sandbox) -> dict[str, Endpoint]:
    store = sandbox.store
    auth = ApiKeyCheck(sandbox.settings.api_key)
    max_bytes = sandbox.settings.max_message_bytes

    def stored(request: Request) -> list[MessageCopy]:
        domain: str = request.path_params["domain"]
        if domain not in store.domains:
            raise domain_not_found(domain)
        copies = store.messages_by_id.get(f"{request.path_params['key']}@{domain}")
        if not copies:
            raise message_not_found()
        if time.time() - copies[0].received_at >= sandbox.retention_seconds:
            raise message_not_found()
        return copies

    def describe(request: Request, copies: list[MessageCopy]) -> JSON:
        copy = copies[0]
        mime = build_mime(copy)
        url = str(request.url).split("?")[0]
        attachments = [
            {
                "url": f"{url}/attachments/{n}",
                "content-type": bare_content_type(part.content_type),
                "name": part.filename,
                "size": len(part.data),
            }
            for n, part in enumerate(copy.attachments)
        ]
        headers = [[name, str(value)] for name, value in mime.items()]
        body: JSON = {name: value for name, value in headers}
        body.update(
            {
                "Message-Id": f"<{copy.message_id}>",
                "From": copy.sender,
                "To": ", ".join(copy.to),
                "Subject": copy.subject,
                "Mime-Version": str(mime.get("MIME-Version", "1.0")),
                "Content-Type": str(mime.get("Content-Type", "")),
                "Content-Transfer-Encoding": str(mime.get("Content-Transfer-Encoding", "")),
                "X-Mailgun-Tag": ", ".join(copy.tags),
                "sender": copy.shared["sender"],
                "from": copy.sender,
                "subject": copy.subject,
                "recipients": ", ".join(c.recipient for c in copies),
            }
        )
        if request.headers.get("accept", "").startswith("message/rfc2822"):
            # A MIME send answers the bytes it was sent, not a re-serialisation of them.
            raw = copy.mime.decode("utf-8", "replace") if copy.mime is not None else None
            body["body-mime"] = raw if raw is not None else mime.as_string()
            return body
        body.update(
            {
                "body-plain": copy.text or "",
                "body-html": copy.html or "",
                "stripped-text": copy.text or "",
                "stripped-html": copy.html or "",
                "stripped-signature": "",
                "message-headers": headers,
                "attachments": attachments,
                "message-url": url,
                "content-id-map": {
                    f"<{part.filename}>": {
                        "url": f"{url}/inline/{n}",
                        "content-type": bare_content_type(part.content_type),
                        "name": part.filename,
                        "size": len(part.data),
                    }
                    for n, part in enumerate(copy.inline)
                },
            }
        )
        return body

    async def message(request: Request) -> Response:
        counted = f"{request.method} {ROUTE}"
        if not auth.allows(request.headers.get("authorization")):
            store.count_request(counted, 401)
            return forbidden()
        try:
            copies = stored(request)
            if request.method == "GET":
                answer = describe(request, copies)
            else:
                answer = await resend(request, copies)
        except MailgunError as error:
            store.count_request(counted, error.status)
            return error.response()
        store.count_request(counted, 200)
        return json_response(answer)

    async def resend(request: Request, copies: list[MessageCopy]) -> JSON:
        fields, files = await read_form(request, max_bytes)
        for name, _ in [*fields, *((n, "") for n, _ in files)]:
            if name != "to":
                raise MailgunError(400, f"'{name}' parameter is not supported by a resend")
        to = parse_addresses([value for _, value in fields], "to")
        if not to:
            raise MailgunError(400, "to parameter is missing")
        copy = copies[0]
        options = {k: v for k, v in copy.options.items() if k != "deliverytime"}
        again = SendRequest(
            sender=copy.sender,
            sender_address=copy.shared["sender"],
            to=to,
            cc=[],
            bcc=[],
            subject=copy.subject,
            text=copy.text,
            html=copy.html,
            amp_html=copy.amp_html,
            template=None,  # already rendered: the stored message is what is sent again
            tags=list(copy.tags),
            headers=dict(copy.headers),
            variables=dict(copy.variables),
            options=options,
            recipient_variables=None,
            attachments=[replace(p) for p in copy.attachments],
            inline=[replace(p) for p in copy.inline],
            mime=copy.mime,
        )
        message_id = sandbox.accept(again, copy.domain, api_base(request))
        return {"id": f"<{message_id}>", "message": "Queued. Thank you."}

    async def part(request: Request) -> Response:
        counted = f"GET {ROUTE}/{request.path_params['which']}/{{n}}"
        if not auth.allows(request.headers.get("authorization")):
            store.count_request(counted, 401)
            return forbidden()
        try:
            if request.path_params["which"] not in ("attachments", "inline"):
                raise MailgunError(404, "Not Found")
            copy = stored(request)[0]
            group = (
                copy.attachments if request.path_params["which"] == "attachments" else copy.inline
            )
            n: int = request.path_params["n"]
            if not 0 <= n < len(group):
                raise MailgunError(404, "Attachment not found")
        except MailgunError as error:
            store.count_request(counted, error.status)
            return error.response()
        store.count_request(counted, 200)
        found = group[n]
        return Response(found.data, media_type=bare_content_type(found.content_type))

    return {"message": message, "part": part}
