"""Real Mailgun payloads saved under tests/fixtures/mailgun, and a test configuration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tidings.providers.mailgun.settings import MailgunConfig

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "mailgun"
API_KEY = "key-0123456789abcdef0123456789abcdef"
SIGNING_KEY = "signing-key-fedcba9876543210"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def make_config(base_url: str = "https://api.mailgun.net", **changes: Any) -> MailgunConfig:
    values: dict[str, Any] = {
        "api_key": API_KEY,
        "domain": "mg.example.com",
        "base_url": base_url,
        "from_address": "Acme <no-reply@mg.example.com>",
        "webhook_signing_key": SIGNING_KEY,
    }
    values.update(changes)
    return MailgunConfig(**values)
