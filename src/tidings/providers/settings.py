"""Provider configuration settings: their schema (the catalog), validation, and masking.

Settings keys are snake_case, as in Courier's Providers API. Secrets are write-only: an answer
shows at most their last four characters.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tidings.providers.base import ProviderConfig

US_HOST = "api.mailgun.net"
EU_HOST = "api.eu.mailgun.net"
SECRET_FIELDS = ("api_key", "webhook_signing_key")


class RateLimit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rate: float = Field(gt=0, description="Messages per period.")
    period: Literal["second", "minute", "hour"] = "second"

    @property
    def per_second(self) -> float:
        return self.rate / {"second": 1.0, "minute": 60.0, "hour": 3600.0}[self.period]


PollingMode = Literal["on", "off", "auto"]


class MailgunSettings(BaseModel):
    """One Mailgun configuration: an account key, a sending domain, and a region."""

    model_config = ConfigDict(extra="forbid")

    api_key: str = Field(min_length=1, description="Mailgun private API key (write-only).")
    domain: str = Field(min_length=1, description="The sending domain, e.g. mg.example.com.")
    host: str = Field(
        default=US_HOST,
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

    def to_config(self) -> ProviderConfig:
        return ProviderConfig(
            api_key=self.api_key,
            domain=self.domain,
            base_url=self.host,
            from_address=self.from_address,
            webhook_signing_key=self.webhook_signing_key,
            proxy_url=self.proxy_url,
        )


def base_url_for(host: str) -> str:
    """``api.eu.mailgun.net`` → ``https://api.eu.mailgun.net``; full URLs are kept (no slash)."""
    host = host.strip()
    if "://" in host:
        parts = urlsplit(host)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be a host name or an http(s):// base URL")
        return host.rstrip("/")
    if not host or "/" in host or " " in host:
        raise ValueError("must be a host name such as api.eu.mailgun.net")
    return f"https://{host.lower()}"


def mask(secret: str | None) -> str | None:
    """Show a secret's last four characters at most (none at all when it is short)."""
    if not secret:
        return None
    return "****" + secret[-4:] if len(secret) >= 12 else "****"


def hide_password(url: str) -> str:
    """A URL with any password in it replaced by ``****`` (proxy URLs carry credentials)."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = f"{parts.username}:****@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc).geturl()


def public_settings(settings: dict[str, Any]) -> dict[str, Any]:
    shown = dict(settings)
    for name in SECRET_FIELDS:
        if shown.get(name):
            shown[name] = mask(shown[name])
    if shown.get("proxy_url"):
        shown["proxy_url"] = hide_password(shown["proxy_url"])
    return shown


_CATALOG_TYPES = {
    "api_key": ("string", True, None),
    "domain": ("string", True, None),
    "host": ("string", False, None),
    "from_address": ("string", False, None),
    "webhook_signing_key": ("string", False, None),
    "polling": ("enum", False, ["on", "off", "auto"]),
    "rate_limit": ("object", False, None),
    "proxy_url": ("string", False, None),
}


def catalog() -> dict[str, Any]:
    """What ``GET /providers/catalog`` answers: each provider's settings schema, in Courier's
    shape (``{field: {type, required, values?}}``) plus a description and write-only flag."""
    fields: dict[str, Any] = {}
    for name, info in MailgunSettings.model_fields.items():
        kind, required, values = _CATALOG_TYPES[name]
        entry: dict[str, Any] = {
            "type": kind,
            "required": required,
            "description": info.description,
            "write_only": name in SECRET_FIELDS,
        }
        if values:
            entry["values"] = values
        fields[name] = entry
    return {
        "results": [
            {
                "provider": "mailgun",
                "name": "Mailgun",
                "channel": "email",
                "description": "Email through Mailgun's Messages API (US or EU region).",
                "settings": fields,
            }
        ]
    }
