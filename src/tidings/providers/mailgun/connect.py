"""Register a Tidings webhook URL at Mailgun for one configuration (issue 4, item 5).

``connect`` first proves the key and the domain with ``GET /v3/domains/{domain}`` — the one
call whose failure says plainly "wrong key or region" or "wrong domain or region" — and then
makes sure every event kind Tidings understands has the URL among its webhook URLs:

* a kind with no webhook yet is created with just this URL;
* a kind whose webhook already lists the URL is left alone (so connecting twice is a no-op);
* a kind with other URLs gets this one added and keeps them, because those URLs belong to
  someone else (another system, a colleague's tunnel) and removing them would break it;
* a kind that already has Mailgun's maximum of 3 URLs is reported as full and not touched:
  choosing which URL to drop is a person's decision.

The webhook list is read once; a webhook created meanwhile by someone else ("Webhook already
exists") is handled by reading it again and updating it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from yarl import URL

from tidings.providers.mailgun.client import DomainInfo, MailgunClient
from tidings.providers.mailgun.errors import MailgunAPIError, MailgunError
from tidings.providers.mailgun.settings import MailgunConfig

__all__ = [
    "MAX_URLS_PER_KIND",
    "WEBHOOK_KINDS",
    "ConnectError",
    "ConnectReport",
    "WebhookResult",
    "check_domain",
    "connect",
]

# Every kind whose events change or explain a message's status. ``accepted`` is left out:
# Tidings already knows a message was accepted from Mailgun's answer to the send.
WEBHOOK_KINDS: tuple[str, ...] = (
    "delivered",
    "permanent_fail",
    "temporary_fail",
    "opened",
    "clicked",
    "complained",
    "unsubscribed",
)
MAX_URLS_PER_KIND = 3  # Mailgun refuses a fourth URL for one webhook kind

Action = Literal["created", "added", "already", "full"]


class ConnectError(MailgunError):
    """Mailgun refused the configuration itself (key, region, domain): a person must fix it."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True, slots=True)
class WebhookResult:
    """What ``connect`` did for one webhook kind, and the kind's URLs afterwards."""

    kind: str
    action: Action
    urls: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "action": self.action, "urls": list(self.urls)}


@dataclass(frozen=True, slots=True)
class ConnectReport:
    domain: str
    host: str  # the Mailgun origin, e.g. https://api.eu.mailgun.net
    domain_state: str | None
    url: str
    webhooks: list[WebhookResult] = field(default_factory=list)

    @property
    def registered(self) -> list[str]:
        return [w.kind for w in self.webhooks if w.action in ("created", "added")]

    @property
    def already(self) -> list[str]:
        return [w.kind for w in self.webhooks if w.action == "already"]

    @property
    def full(self) -> list[str]:
        return [w.kind for w in self.webhooks if w.action == "full"]

    @property
    def complete(self) -> bool:
        """True when every kind now sends to ``url``."""
        return not self.full

    def as_dict(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "host": self.host,
            "domain_state": self.domain_state,
            "url": self.url,
            "complete": self.complete,
            "registered": self.registered,
            "already": self.already,
            "full": self.full,
            "webhooks": [w.as_dict() for w in self.webhooks],
        }


def _origin(config: MailgunConfig) -> str:
    return str(URL(config.base_url).origin())


async def check_domain(client: MailgunClient, config: MailgunConfig) -> DomainInfo:
    """The domain as Mailgun describes it; raises :class:`ConnectError` when the key or the
    domain is wrong for this region."""
    host = _origin(config)
    try:
        info = await client.get_domain(config)
    except MailgunAPIError as exc:
        if exc.status_code == 401:
            raise ConnectError(
                f"wrong API key or wrong region: Mailgun at {host} refused the API key "
                f"(401 Forbidden) for domain {config.domain}. Check the key, and that the "
                "host matches the domain's region (EU domains: api.eu.mailgun.net)",
                status_code=401,
            ) from exc
        if exc.status_code == 404:
            raise ConnectError(
                f"wrong domain or region: domain {config.domain} not found at {host}. "
                "Check the domain's spelling in Mailgun → Sending → Domains, and that the "
                "host matches its region (US: api.mailgun.net, EU: api.eu.mailgun.net)",
                status_code=404,
            ) from exc
        raise
    return info


async def connect(client: MailgunClient, config: MailgunConfig, url: str) -> ConnectReport:
    """Make Mailgun post every kind in :data:`WEBHOOK_KINDS` for ``config.domain`` to
    ``url``, keeping other URLs. Idempotent. Raises :class:`ConnectError` for a wrong key,
    region or domain, and the client's errors for anything else."""
    state = (await check_domain(client, config)).state
    current = {hook.name: hook.urls for hook in await client.list_webhooks(config)}
    report = ConnectReport(domain=config.domain, host=_origin(config), domain_state=state, url=url)
    for kind in WEBHOOK_KINDS:
        report.webhooks.append(await _ensure(client, config, kind, url, current.get(kind)))
    return report


async def _ensure(
    client: MailgunClient,
    config: MailgunConfig,
    kind: str,
    url: str,
    urls: tuple[str, ...] | None,
) -> WebhookResult:
    """``urls`` is None when Mailgun has no webhook of this kind at all, and may be empty
    when it lists the kind without URLs (then it must be updated: creating it would fail)."""
    if urls is not None and url in urls:
        return WebhookResult(kind, "already", urls)
    if urls is None:
        try:
            created = await client.create_webhook(config, kind, [url])
        except MailgunAPIError as exc:
            if exc.status_code != 400 or "already exists" not in str(exc).lower():
                raise
            # Created by someone else since the list was read: add to it instead.
            fresh = {hook.name: hook.urls for hook in await client.list_webhooks(config)}
            if kind not in fresh:
                raise
            return await _ensure(client, config, kind, url, fresh[kind])
        return WebhookResult(kind, "created", created.urls)
    if len(urls) >= MAX_URLS_PER_KIND:
        return WebhookResult(kind, "full", urls)
    updated = await client.update_webhook(config, kind, [*urls, url])
    return WebhookResult(kind, "added" if urls else "created", updated.urls)
