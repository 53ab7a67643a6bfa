"""Auth for the API: a bearer token, or the signed session cookie the UI's login form sets.

The session cookie never carries the API key. It holds ``<expiry>.<HMAC(secret, expiry)>``,
where the secret is derived from what opens the API (the stored key hashes and the hash of
the configured key). Every process that shares the database and configuration derives the
same secret, so a session survives restarts and works on every API process; adding or
removing a key changes the secret and so ends every session.

A request authenticated by the cookie alone may only change something (POST, PATCH, ...)
when it also carries the ``X-Tidings-UI`` header: a browser adds a custom header to a
cross-origin request only after a CORS preflight, which Tidings never grants, so another site
cannot drive the API with a logged-in user's cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from fastapi import Request

from tidings.errors import Unauthorized
from tidings.store import api_keys

SESSION_COOKIE = "tidings_session"
SESSION_TTL_S = 12 * 3600
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


def _signature(ring: KeyRing, expiry: int) -> str:
    return hmac.new(ring.session_secret(), str(expiry).encode(), hashlib.sha256).hexdigest()


def issue_session(ring: KeyRing, *, now: float | None = None, ttl_s: int = SESSION_TTL_S) -> str:
    """A cookie value for a user who has just shown a valid key."""
    expiry = int((time.time() if now is None else now) + ttl_s)
    return f"{expiry}.{_signature(ring, expiry)}"


def session_valid(ring: KeyRing, value: str | None, *, now: float | None = None) -> bool:
    """True for an unexpired cookie signed with the current secret."""
    if not value or ring.empty:
        # With no key at all the secret would be a public constant: nothing may open.
        return False
    expiry_text, _, signature = value.partition(".")
    if not expiry_text.isdigit() or not signature:
        return False
    expiry = int(expiry_text)
    if expiry <= (time.time() if now is None else now):
        return False
    return hmac.compare_digest(signature, _signature(ring, expiry))


def presented_key(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    return ""


def has_session(request: Request) -> bool:
    ring: KeyRing = request.app.state.runtime.keyring
    return session_valid(ring, request.cookies.get(SESSION_COOKIE))


async def require_api_key(request: Request) -> None:
    ring: KeyRing = request.app.state.runtime.keyring
    if ring.accepts(presented_key(request)):
        return
    if has_session(request):
        if request.method in _SAFE_METHODS or request.headers.get(CSRF_HEADER):
            return
        raise Unauthorized(
            "Unauthorized: a change made with the UI session needs the X-Tidings-UI header"
        )
    raise Unauthorized("Unauthorized: send 'Authorization: Bearer <TIDINGS_API_KEY>'")
