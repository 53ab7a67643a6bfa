"""Identifiers: time-ordered (so newest-first listing is an index scan) and unguessable."""

from __future__ import annotations

import secrets
import time


def new_id(prefix: str = "") -> str:
    """A 32-character id: 12 hex digits of milliseconds, then 20 random hex digits."""
    return f"{prefix}{int(time.time() * 1000):012x}{secrets.token_hex(10)}"


def new_secret(nbytes: int = 24) -> str:
    return secrets.token_urlsafe(nbytes)
