"""Bearer-token auth for the API (and the cookie the UI sets after its login form)."""

from __future__ import annotations

import hmac

from fastapi import Request

from tidings.errors import Unauthorized
from tidings.store import api_keys

UI_COOKIE = "tidings_session"


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


def presented_key(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    return request.cookies.get(UI_COOKIE, "")


async def require_api_key(request: Request) -> None:
    ring: KeyRing = request.app.state.runtime.keyring
    if not ring.accepts(presented_key(request)):
        raise Unauthorized("Unauthorized: send 'Authorization: Bearer <TIDINGS_API_KEY>'")
