"""SMTP behind the provider contract: the one class the registry knows SMTP by.

No webhooks, no polling (``has_events = False``): an SMTP message ends at SENT. There is
no log to search for an in-doubt send either, so ``find_sent`` stays the contract's default
(it raises ProviderRefused and the dispatcher ends such a message without sending it
again).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, cast

from tidings.providers.base import (
    Hint,
    OutgoingEmail,
    Provider,
    ProviderConfig,
    ProviderSettings,
    RequestRecord,
    SendOutcome,
)
from tidings.providers.smtp.answers import HINTS, hint_for
from tidings.providers.smtp.client import send_request
from tidings.providers.smtp.message import SmtpRequest, build_message, record
from tidings.providers.smtp.settings import SmtpConfig, SmtpSettings

__all__ = ["SmtpProvider"]


def _smtp(config: ProviderConfig) -> SmtpConfig:
    if not isinstance(config, SmtpConfig):
        raise TypeError(f"not an SMTP configuration: {type(config).__name__}")
    return config


class SmtpProvider(Provider):
    key: ClassVar[str] = "smtp"
    name: ClassVar[str] = "SMTP"
    channel: ClassVar[str] = "email"
    description: ClassVar[str] = "Email through any SMTP relay (STARTTLS, TLS, AUTH)."
    settings_model: ClassVar[type[ProviderSettings]] = SmtpSettings
    hints: ClassVar[Sequence[Hint]] = tuple(HINTS)
    has_events: ClassVar[bool] = False

    def build(self, email: OutgoingEmail, config: ProviderConfig) -> SmtpRequest:
        return build_message(email, _smtp(config))

    def record(self, request: Any, secrets: Sequence[str | None] = ()) -> RequestRecord:
        return record(cast(SmtpRequest, request), secrets)

    async def send(self, request: Any, config: ProviderConfig) -> SendOutcome:
        return await send_request(cast(SmtpRequest, request), _smtp(config), self.context)

    @classmethod
    def hint_for(
        cls, status: int | None, message: str | None, code: int | None = None
    ) -> Hint | None:
        return hint_for(status, message, code)
