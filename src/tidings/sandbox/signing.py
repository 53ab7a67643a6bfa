"""Mailgun's webhook signature: hex HMAC-SHA256 of timestamp + token with the signing key."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time


def sign(signing_key: str, timestamp: str, token: str) -> str:
    return hmac.new(
        signing_key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256
    ).hexdigest()


def signature_block(signing_key: str) -> dict[str, str]:
    """A fresh ``signature`` block: now, a 50-character random token, and their signature."""
    timestamp = str(int(time.time()))
    token = secrets.token_hex(25)
    return {
        "timestamp": timestamp,
        "token": token,
        "signature": sign(signing_key, timestamp, token),
    }
