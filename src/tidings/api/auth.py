"""Auth for the API: a bearer token, or the UI's session cookie (see ``api.sessions``).

The session cookie never carries the API key: it holds a random token whose hash is stored
(``ui_sessions``), so logging out ends it everywhere and a restart keeps it.

A request authenticated by the cookie alone may only change something (POST, PATCH, ...)
when it also carries the ``X-Tidings-UI`` header: a browser adds a custom header to a
cross-origin request only after a CORS preflight, which Tidings never grants, so another site
cannot drive the API with a logged-in user's cookie.

Wrong keys are throttled per client address and overall (``api.throttle``): a throttled
client gets 429 with ``Retry-After`` before its key is even looked at.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request

from tidings.api import throttle
from tidings.api.sessions import has_session
from tidings.errors import Unauthorized
from tidings.store import api_keys

CSRF_HEADER = "x-tidings-ui"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Domain separation: the same hashes must never give a secret usable for anything else.
_SESSION_LABEL = b"tidings-ui-session/v1"


class KeyRing:
    """The keys that open the API: the configured one, and the hashes of generated ones."""

    def __init__(self, configured: str | None, hashes: list[str]) -> None:
        self._configured = configured
        self._hashes = list(hashes)

    def add_hash(self, key_hash: str) -> None:
        self._hashes.append(key_hash)

    def accepts(self, key: str) -> bool:
        if not key:
            return False
        if self._configured is not None and hmac.compare_digest(
            key.encode(), self._configured.encode()
        ):
            return True
        return api_keys.matches(key, self._hashes)

    @property
    def empty(self) -> bool:
        return self._configured is None and not self._hashes

    def session_secret(self) -> bytes:
        """The HMAC key of UI sessions, derived from the key hashes (never from a key that is
        only in memory, so that every process computes the same one)."""
        parts = sorted(self._hashes)
        if self._configured is not None:
            parts.append("configured:" + api_keys.hash_key(self._configured))
        return hmac.new(_SESSION_LABEL, "\n".join(parts).encode(), hashlib.sha256).digest()


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
    if ring.accepts(key):
        throttle.note_success(request)
        return
    if key:
        throttle.note_failure(request)
    if await has_session(request):
        if request.method in _SAFE_METHODS or request.headers.get(CSRF_HEADER):
            return
        raise Unauthorized(
            "Unauthorized: a change made with the UI session needs the X-Tidings-UI header"
        )
    raise Unauthorized("Unauthorized: send 'Authorization: Bearer <TIDINGS_API_KEY>'")
