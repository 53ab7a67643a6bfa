"""Auth for the API: a bearer token, or the UI's session cookie (see ``runtime.sessions``).

The session cookie never carries the API key: it holds a random token whose hash is stored
(``ui_sessions``), so logging out ends it everywhere and a restart keeps it.

A request authenticated by the cookie alone may only change something (POST, PATCH, ...)
when it also carries the ``X-Tidings-UI`` header: a browser adds a custom header to a
cross-origin request only after a CORS preflight, which Tidings never grants, so another site
cannot drive the API with a logged-in user's cookie.

Wrong keys are throttled per client address and overall (``runtime.throttle``): a throttled
client gets 429 with ``Retry-After`` before its key is even looked at.
"""

from __future__ import annotations

from fastapi import Request

from tidings.errors import Unauthorized
from tidings.runtime import throttle
from tidings.runtime.sessions import CSRF_HEADER, has_session
from tidings.store.keyring import KeyRing

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def presented_key(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    return ""


async def require_api_key(request: Request) -> None:
    ring: KeyRing = request.app.state.runtime.keyring
    throttle.refuse_if_throttled(request)
    key = presented_key(request)
    if key:
        if ring.known_now(key):
            throttle.note_success(request)
            return
        # The check below awaits the database: the try is counted as wrong first, so that
        # concurrent guesses cannot all pass the throttle meanwhile, and given back if right.
        throttle.charge_try(request)
        if await ring.verify(key):
            throttle.refund_try(request)
            return
    if await has_session(request):
        if request.method in _SAFE_METHODS or request.headers.get(CSRF_HEADER):
            return
        raise Unauthorized(
            "Unauthorized: a change made with the UI session needs the X-Tidings-UI header"
        )
    raise Unauthorized("Unauthorized: send 'Authorization: Bearer <TIDINGS_API_KEY>'")
