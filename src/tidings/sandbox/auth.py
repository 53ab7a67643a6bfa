"""HTTP Basic authentication as Mailgun checks it: user ``api``, password the API key."""

from __future__ import annotations

import base64
import binascii
import hmac


class ApiKeyCheck:
    """Compares the Authorization header; the expected header is computed once."""

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key
        token = base64.b64encode(f"api:{api_key}".encode()).decode()
        self._expected = f"Basic {token}"

    def allows(self, header: str | None) -> bool:
        if header is None:
            return False
        if header == self._expected:  # the common case, without decoding
            return True
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(token.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return user == "api" and hmac.compare_digest(password, self._api_key)
