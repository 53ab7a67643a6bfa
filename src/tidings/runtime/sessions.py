"""UI sessions: the cookie carries a random token, the database the token's hash. Shared by
the UI, which makes the cookie, and the API, which accepts it.

A session is made when someone shows a valid key at the login form, and lives until it
expires (``TIDINGS_UI_SESSION_TTL_S``) or its browser logs out, which deletes its row: a
copy of the cookie stops working at once, on every API process. Kept in the database, a
session survives a restart. Expired rows are swept at each login.

A cookie that opens nothing counts as a failed key for the throttle (``runtime.throttle``): a
browser that has logged out or whose session expired no longer sends it.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING

from fastapi import Request

from tidings.runtime import throttle
from tidings.store import ui_sessions
from tidings.store.clock import utcnow

if TYPE_CHECKING:
    from tidings.runtime import Runtime

SESSION_COOKIE = "tidings_session"
# A change (POST, PATCH, ...) made with the session cookie alone must carry this header: a
# browser adds a custom header to a cross-origin request only after a CORS preflight, which
# Tidings never grants (checked by ``api.auth``, sent by the UI's pages).
CSRF_HEADER = "x-tidings-ui"
_MAX_TOKEN = 128  # anything longer is not one of ours; not worth a query


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    # 32 random bytes: a fast hash is enough, there is nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


async def open_session(rt: Runtime) -> str:
    """A new session's cookie value (for a user who has just shown a valid key)."""
    token = new_token()
    now = utcnow()
    async with rt.db.write() as conn:
        await ui_sessions.sweep(conn, now=now)
        await ui_sessions.create(
            conn, token_hash(token), now=now, ttl=timedelta(seconds=rt.settings.ui_session_ttl_s)
        )
    return token


async def close_session(rt: Runtime, token: str | None) -> None:
    if token and len(token) <= _MAX_TOKEN:
        async with rt.db.write() as conn:
            await ui_sessions.revoke(conn, token_hash(token))


async def session_valid(rt: Runtime, token: str | None) -> bool:
    """True for the token of a live session (and notes that it was seen)."""
    if not token or len(token) > _MAX_TOKEN or rt.keyring.empty:
        # With no key at all nothing may open, not even a session made before.
        return False
    digest = token_hash(token)
    now = utcnow()
    async with rt.db.read() as conn:
        seen = await ui_sessions.last_seen(conn, digest, now=now)
    if seen is None:
        return False
    if now - seen >= ui_sessions.TOUCH_EVERY:
        async with rt.db.write() as conn:
            await ui_sessions.touch(conn, digest, now=now)
    return True


async def has_session(request: Request) -> bool:
    """Whether the request carries a live session cookie; a dead one counts as a failure."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return False
    if await session_valid(request.app.state.runtime, token):
        return True
    throttle.note_failure(request)
    return False
