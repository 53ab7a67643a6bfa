"""Mailgun's settings (what ``POST /providers`` stores for ``provider: mailgun``) and the
configuration one send uses (:class:`MailgunConfig`, the settings with a message's override
applied)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from tidings.providers.base import ProviderSettings
from tidings.providers.settings import PollingMode, RateLimit, base_url_for

US_HOST = "api.mailgun.net"
EU_HOST = "api.eu.mailgun.net"


@dataclass(frozen=True, slots=True)
class MailgunConfig:
    """Where and as whom to send. ``base_url`` is a full URL (``https://api.mailgun.net`` or a
    sandbox ``http://127.0.0.1:PORT``); ``proxy_url`` routes every call through an egress
    proxy."""

    api_key: str
    domain: str
    base_url: str
    from_address: str | None = None
    webhook_signing_key: str | None = None
    proxy_url: str | None = None

    @property
    def target(self) -> str:
        return self.base_url

    @property
    def region(self) -> str:
        """A person's name for where requests go: ``us``, ``eu`` or the base URL itself."""
        if EU_HOST in self.base_url:
            return "eu"
        if US_HOST in self.base_url:
            return "us"
        return self.base_url

    def secrets(self) -> tuple[str | None, ...]:
        return (self.api_key, self.webhook_signing_key)


class MailgunSettings(ProviderSettings):
    """One Mailgun configuration: an account key, a sending domain, and a region."""

    # Where calls go; the credentials that travel with them; what an override may change.
    TARGET_FIELDS: ClassVar[tuple[str, ...]] = ("host", "proxy_url")
    CREDENTIAL_FIELDS: ClassVar[tuple[str, ...]] = ("api_key",)
    KNOWN_ORIGINS: ClassVar[frozenset[str]] = frozenset(
        {f"https://{US_HOST}:443", f"https://{EU_HOST}:443"}
    )
    OVERRIDABLE: ClassVar[tuple[str, ...]] = (
        "api_key",
        "domain",
        "host",
        "from_address",
        "proxy_url",
    )
    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ("api_key", "webhook_signing_key")
    CATALOG_TYPES: ClassVar[Mapping[str, tuple[str, list[str] | None]]] = {
        "polling": ("enum", ["on", "off", "auto"]),
    }

    api_key: str = Field(min_length=1, description="Mailgun private API key (write-only).")
    domain: str = Field(min_length=1, description="The sending domain, e.g. mg.example.com.")
    host: str = Field(
        default=US_HOST,
        validate_default=True,
        description=(
            f"{US_HOST} (US), {EU_HOST} (EU), or a full http(s) base URL such as the sandbox's."
        ),
    )
    from_address: str | None = Field(
        default=None, description="Default From, e.g. 'Acme <no-reply@mg.example.com>'."
    )
    webhook_signing_key: str | None = Field(
        default=None, description="Mailgun's HTTP webhook signing key (write-only)."
    )
    polling: PollingMode = Field(
        default="on",
        description="Read Mailgun's Events API: on, off, or auto (off while webhooks flow).",
    )
    rate_limit: RateLimit | None = Field(default=None, description="Cap on the send rate.")
    proxy_url: str | None = Field(
        default=None, description="Egress proxy for every call to Mailgun (http, https, socks5)."
    )

    @field_validator("polling", mode="before")
    @classmethod
    def _polling_bool(cls, value: Any) -> Any:
        if value is True:
            return "on"
        if value is False:
            return "off"
        return value

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        value = value.strip().lower()
        if "/" in value or " " in value or "." not in value:
            raise ValueError("must be a domain name such as mg.example.com")
        return value

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return base_url_for(value)

    @field_validator("proxy_url")
    @classmethod
    def _proxy(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if (
            parts.scheme not in ("http", "https", "socks5", "socks5h", "socks4")
            or not parts.hostname
        ):
            raise ValueError("must be an http://, https:// or socks5:// proxy URL")
        return value

    def polling_mode(self) -> str:
        return self.polling

    def to_config(self) -> MailgunConfig:
        return MailgunConfig(
            api_key=self.api_key,
            domain=self.domain,
            base_url=self.host,
            from_address=self.from_address,
            webhook_signing_key=self.webhook_signing_key,
            proxy_url=self.proxy_url,
        )
