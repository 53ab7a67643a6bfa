"""The key ring: which keys open the API, read from the database (``api_keys``) and cached.

Shared by every process kind through its runtime: the API checks bearer tokens with it, the
UI's login form checks the key a person types, and a UI session opens nothing while the ring
is empty.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from datetime import datetime

import structlog

from tidings.store import api_keys
from tidings.store.clock import utcnow
from tidings.store.database import Database

log = structlog.get_logger("tidings.auth")

# How long the stored key hashes are trusted before they are read again: the most a revoked
# key can still be used for.
KEY_CACHE_S = 2.0
# A key's last use is written at most this often (the list shows it to the minute).
LAST_USED_EVERY_S = 60.0


class KeyRing:
    """The keys that open the API: the configured one, and the stored ones (by hash).

    Keys are made and revoked by ``tidings keys`` in another process, straight in the
    database, so the ring reads the database rather than trusting what it read at start-up:
    the stored hashes are cached for ``ttl_s`` (a revoked key stops working within that),
    and a key the cache does not know is looked up at once (a new key works at once). When
    a stored key was last used is written at most once a minute per key, in the background.
    """

    def __init__(
        self,
        configured: str | None,
        hashes: list[str],
        *,
        db: Database | None = None,
        ttl_s: float = KEY_CACHE_S,
    ) -> None:
        self._configured = configured
        self._hashes = set(hashes)
        self._db = db
        self._ttl_s = ttl_s
        self._loaded_at = time.monotonic()
        self._refresh_lock = asyncio.Lock()
        self._used_at: dict[str, float] = {}
        self._touches: set[asyncio.Task[None]] = set()

    def add_hash(self, key_hash: str) -> None:
        self._hashes.add(key_hash)

    def known_now(self, key: str) -> bool:
        """True when ``key`` opens the API by what this process knows now, without waiting
        (the configured key, or a stored one in a fresh cache); False means "ask
        :meth:`verify`", not "wrong"."""
        if not key:
            return False
        if self._configured is not None and hmac.compare_digest(
            key.encode(), self._configured.encode()
        ):
            return True
        if self._db is not None and time.monotonic() - self._loaded_at >= self._ttl_s:
            return False
        digest = api_keys.hash_key(key)
        if digest not in self._hashes:
            return False
        if self._db is not None:
            self._note_use(digest)
        return True

    async def verify(self, key: str) -> bool:
        """True when ``key`` opens the API now."""
        if not key:
            return False
        if self._configured is not None and hmac.compare_digest(
            key.encode(), self._configured.encode()
        ):
            return True
        if self._db is None:
            return api_keys.matches(key, list(self._hashes))
        await self._refresh_if_stale()
        digest = api_keys.hash_key(key)
        if digest not in self._hashes:
            # Not in the cache: perhaps made a moment ago by `tidings keys create`.
            async with self._db.read() as conn:
                if not await api_keys.exists(conn, digest):
                    return False
            self._hashes.add(digest)
        self._note_use(digest)
        return True

    async def _refresh_if_stale(self) -> None:
        if time.monotonic() - self._loaded_at < self._ttl_s:
            return
        async with self._refresh_lock:
            if time.monotonic() - self._loaded_at < self._ttl_s or self._db is None:
                return
            try:
                async with self._db.read() as conn:
                    self._hashes = set(await api_keys.hashes(conn))
            except Exception as exc:
                # The database is away: the keys known a moment ago still open the API; a
                # revocation this process could not read takes effect once it can again.
                log.warning("could not read the API keys; using the ones known", error=str(exc))
            self._loaded_at = time.monotonic()

    def _note_use(self, digest: str) -> None:
        now = time.monotonic()
        last = self._used_at.get(digest)
        if last is not None and now - last < LAST_USED_EVERY_S:
            return
        self._used_at[digest] = now
        task = asyncio.create_task(self._touch(digest, utcnow()))
        self._touches.add(task)
        task.add_done_callback(self._touches.discard)

    async def _touch(self, digest: str, when: datetime) -> None:
        assert self._db is not None
        try:
            async with self._db.write() as conn:
                await api_keys.touch(conn, digest, when)
        except Exception as exc:
            # Only bookkeeping: a request must never fail because of it.
            log.warning("could not record when an API key was used", error=str(exc))

    async def aclose(self) -> None:
        """Wait for the last-used writes still under way (before the database closes)."""
        if self._touches:
            await asyncio.gather(*self._touches, return_exceptions=True)

    @property
    def empty(self) -> bool:
        return self._configured is None and not self._hashes
