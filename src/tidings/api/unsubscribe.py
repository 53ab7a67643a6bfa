"""One-click unsubscribe (RFC 8058): the public ``/unsubscribe/{token}`` that topic emails'
``List-Unsubscribe`` header points at.

No API key and no login: the token is the authority. It is signed by the server
(:func:`tidings.domain.consent.sign_token`, HMAC-SHA256 under a key only the database
holds) for one recipient and one topic, and carries nothing else secret.

* ``POST`` (what a mail client sends, with the body ``List-Unsubscribe=One-Click``; the
  confirmation page's form sends the same) opts the recipient out of the topic. Idempotent:
  a second POST changes nothing and answers the same 200. A REQUIRED topic cannot be left
  (409, saying so); a topic since archived sends nothing any more (200).
* ``GET`` shows a small confirmation page with a form that POSTs, and changes nothing:
  link scanners and prefetchers follow GETs, and must not unsubscribe anyone.
* A token that is not one this server signed (forged, altered, truncated) is a 400 that
  does not say which part failed.
"""

from __future__ import annotations

import html
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import HTMLResponse

from tidings.domain.consent import verify_token
from tidings.runtime import Runtime, runtime
from tidings.store import preferences as store
from tidings.store.preferences import StoredTopic

router = APIRouter(prefix="/unsubscribe", tags=["unsubscribe"])

Token = Annotated[str, Path(max_length=2048)]

# The page is ours alone: no scripts, no outside resources, not framed, not indexed, and
# the token in its address is not sent on as a Referer.
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex",
    "X-Content-Type-Options": "nosniff",
}
_HTML: dict[str, Any] = {"text/html": {"schema": {"type": "string"}}}
_ANSWERS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Not a link this server made (whatever was wrong).", "content": _HTML},
    409: {"description": "The topic is REQUIRED: it cannot be left.", "content": _HTML},
}
INVALID = "This unsubscribe link is not valid. Use the link in the email you received."


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;"
        "padding:0 1rem;color:#222}button{font-size:1rem;padding:.5rem 1rem}"
        f"</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>",
        status_code=status,
        headers=_HEADERS,
    )


async def _resolve(rt: Runtime, token: str) -> tuple[str, str] | None:
    secret = await store.unsubscribe_secret(rt.db)
    return verify_token(secret, token)


async def _topic(rt: Runtime, topic_id: str) -> StoredTopic | None:
    async with rt.db.read() as conn:
        return await store.get_topic(conn, topic_id)


@router.get("/{token}", response_class=HTMLResponse, responses=_ANSWERS)
async def confirm_page(token: Token, rt: Runtime = Depends(runtime)) -> HTMLResponse:
    """The confirmation page: a form that POSTs; nothing changes until it is sent."""
    found = await _resolve(rt, token)
    if found is None:
        return _page("Link not valid", f"<p>{html.escape(INVALID)}</p>", 400)
    _recipient, topic_id = found
    topic = await _topic(rt, topic_id)
    if topic is None:
        return _page(
            "Nothing to unsubscribe from",
            "<p>These emails are no longer sent, so there is nothing to unsubscribe from.</p>",
        )
    name = html.escape(topic.name)
    if topic.default_status == "REQUIRED":
        return _page(
            "These emails are required",
            f"<p>Emails about <strong>{name}</strong> are required and cannot be "
            "unsubscribed from.</p>",
        )
    return _page(
        "Unsubscribe",
        f"<p>Stop receiving emails about <strong>{name}</strong>?</p>"
        '<form method="post">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>',
    )


@router.post("/{token}", response_class=HTMLResponse, responses=_ANSWERS)
async def unsubscribe(token: Token, rt: Runtime = Depends(runtime)) -> HTMLResponse:
    """Opt the token's recipient out of its topic (RFC 8058 one-click; idempotent).

    The body (``List-Unsubscribe=One-Click``, form-encoded) is not required: what is done
    is decided by the token alone, and a client that posts nothing meant the same.
    """
    found = await _resolve(rt, token)
    if found is None:
        return _page("Link not valid", f"<p>{html.escape(INVALID)}</p>", 400)
    recipient, topic_id = found
    async with rt.db.write() as conn:
        topic = await store.get_topic(conn, topic_id)
        if topic is None:
            return _page(
                "Unsubscribed",
                "<p>These emails are no longer sent, so there is nothing more to do.</p>",
            )
        if topic.default_status == "REQUIRED":
            return _page(
                "These emails are required",
                f"<p>Emails about <strong>{html.escape(topic.name)}</strong> are required "
                "and cannot be unsubscribed from.</p>",
                409,
            )
        await store.set_choice(conn, recipient, topic, status="OPTED_OUT", source="unsubscribe")
    return _page(
        "Unsubscribed",
        f"<p>You will no longer receive emails about <strong>{html.escape(topic.name)}"
        "</strong>.</p>",
    )
