"""SMTP's settings (what ``POST /providers`` stores for ``provider: smtp``) and the
configuration one send uses (:class:`SmtpConfig`).

Choices, so that a reader need not guess them:

* ``from_address`` is required: an SMTP relay has no sending domain of its own to default
  to, and relays commonly refuse senders they were not set up for, so the operator says it.
* ``port`` defaults by ``security``: 587 for ``starttls``, 465 for ``tls``, 25 for ``none``.
* TLS always verifies the server's certificate and host name. A relay with a private CA is
  trusted by giving that CA (``ca_cert``, PEM text); there is no switch to turn verification
  off.
* A username and password travel only over TLS: ``security: none`` with credentials is
  refused, since the password would cross the network in clear.
* Only ``from_address`` may be overridden per message. Host and port name where the
  password goes (``TARGET_FIELDS``) and are not overridable at all, which keeps the
  keys-stay-with-hosts rule without needing trusted origins for SMTP.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parseaddr
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from tidings.domain.network import literal_address
from tidings.providers.base import ProviderSettings
from tidings.providers.settings import RateLimit

__all__ = ["DEFAULT_PORTS", "Security", "SmtpConfig", "SmtpSettings", "address_domain"]

Security = Literal["starttls", "tls", "none"]
DEFAULT_PORTS: Mapping[str, int] = {"starttls": 587, "tls": 465, "none": 25}


def address_domain(address: str) -> str | None:
    """``'Acme <no-reply@Example.com>'`` → ``example.com`` (None without a domain)."""
    _name, spec = parseaddr(address)
    local, at, domain = spec.rpartition("@")
    if not at or not local or not domain:
        return None
    return domain.lower()


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    """Where and as whom to send: one relay, its credentials, and the default From."""

    host: str
    port: int
    security: Security
    from_address: str
    username: str | None = None
    password: str | None = None
    ca_cert: str | None = None
    local_hostname: str | None = None

    @property
    def target(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"smtp://{host}:{self.port}"

    @property
    def domain(self) -> str | None:
        return address_domain(self.from_address)

    @property
    def region(self) -> str:
        return self.target

    def secrets(self) -> tuple[str | None, ...]:
        return (self.password,)


class SmtpSettings(ProviderSettings):
    """One SMTP relay: host, port, transport security, optional AUTH, and the From."""

    TARGET_FIELDS: ClassVar[tuple[str, ...]] = ("host", "port")
    CREDENTIAL_FIELDS: ClassVar[tuple[str, ...]] = ("username", "password")
    OVERRIDABLE: ClassVar[tuple[str, ...]] = ("from_address",)
    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ("password",)
    CATALOG_TYPES: ClassVar[Mapping[str, tuple[str, list[str] | None]]] = {
        "security": ("enum", ["starttls", "tls", "none"]),
    }

    host: str = Field(min_length=1, description="The relay's host name or IP address.")
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="TCP port; default by security: 587 starttls, 465 tls, 25 none.",
    )
    security: Security = Field(
        default="starttls",
        description="starttls (upgrade a plain connection), tls (TLS from the first byte), "
        "or none (no encryption; no credentials allowed).",
    )
    username: str | None = Field(default=None, description="AUTH user name.")
    password: str | None = Field(default=None, description="AUTH password (write-only).")
    from_address: str = Field(
        min_length=3, description="Default From, e.g. 'Acme <no-reply@example.com>'."
    )
    ca_cert: str | None = Field(
        default=None,
        description="PEM certificate(s) of a private CA the relay's certificate is checked "
        "against, instead of the system's CAs. Verification is always on.",
    )
    local_hostname: str | None = Field(
        default=None, description="The name this host gives in EHLO (default: its FQDN)."
    )
    rate_limit: RateLimit | None = Field(default=None, description="Cap on the send rate.")

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        value = value.strip().lower()
        if value.startswith("[") and value.endswith("]"):
            value = value[1:-1]
        if literal_address(value) is not None:
            return value
        if not value or "://" in value or any(c in value for c in "/ @:[]\\"):
            raise ValueError("must be a host name or IP address such as smtp.example.com")
        return value.rstrip(".")

    @field_validator("from_address")
    @classmethod
    def _from(cls, value: str) -> str:
        value = value.strip()
        if "\r" in value or "\n" in value or address_domain(value) is None:
            raise ValueError("must be an email address such as 'Acme <no-reply@example.com>'")
        return value

    @field_validator("ca_cert")
    @classmethod
    def _ca(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            ssl.create_default_context(cadata=value)
        except (ssl.SSLError, ValueError) as exc:
            raise ValueError(f"must be PEM certificate text ({exc})") from None
        return value

    @field_validator("local_hostname")
    @classmethod
    def _local(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not value or any(c.isspace() or ord(c) < 32 for c in value):
            raise ValueError("must be a host name without spaces")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SmtpSettings:
        if self.port is None:
            self.port = DEFAULT_PORTS[self.security]
        if bool(self.username) != bool(self.password):
            raise ValueError("username and password go together: give both or neither")
        if self.username and self.security == "none":
            raise ValueError(
                "security 'none' with a username and password would send the password in "
                "clear: use starttls or tls"
            )
        return self

    def to_config(self) -> SmtpConfig:
        return SmtpConfig(
            host=self.host,
            port=self.port or DEFAULT_PORTS[self.security],
            security=self.security,
            from_address=self.from_address,
            username=self.username or None,
            password=self.password or None,
            ca_cert=self.ca_cert,
            local_hostname=self.local_hostname,
        )
