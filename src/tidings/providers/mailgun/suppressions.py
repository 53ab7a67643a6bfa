"""Mailgun's suppression lists behind the contract (:class:`SuppressionLists`).

Mailgun keeps three lists per sending domain that make it drop a send (605 bounce, 606
unsubscribe, 607 complaint): ``/v3/{domain}/bounces``, ``/unsubscribes`` and
``/complaints``, each paged alphabetically by ``paging.next`` URLs until a page is empty.
Reading them turns each entry into a :class:`RemoteSuppression`; removing an address
deletes it from all three.

An unsubscribe from one tag only (``tags`` without ``*``) is not imported: Tidings' list
suppresses an address for every message, which would be more than the recipient asked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from tidings.providers.base import ProviderConfig, RemoteSuppression, SuppressionLists
from tidings.providers.mailgun.client import MailgunClient
from tidings.providers.mailgun.settings import MailgunConfig

__all__ = ["LISTS", "MailgunSuppressionLists", "to_suppression"]

# Mailgun's list -> the reason Tidings records.
LISTS: tuple[tuple[str, str], ...] = (
    ("bounces", "bounce"),
    ("unsubscribes", "unsubscribe"),
    ("complaints", "complaint"),
)
PAGE_LIMIT = 1000  # Mailgun's maximum page size for these lists
# A safety net against a server that hands out next URLs forever.
MAX_PAGES = 100_000


def _when(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _code(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _tags(item: dict[str, Any]) -> list[str]:
    tags = item.get("tags")
    found = [str(t) for t in tags] if isinstance(tags, list) else []
    if isinstance(item.get("tag"), str):
        found.append(item["tag"])
    return found or ["*"]


def to_suppression(list_name: str, item: dict[str, Any], domain: str) -> RemoteSuppression | None:
    """One entry of a Mailgun list as Tidings keeps it, or None when it is not one Tidings
    imports (no address, an unsubscribe from some tags only)."""
    address = str(item.get("address") or "").strip().lower()
    if not address or "@" not in address:
        return None
    when = _when(item.get("created_at"))
    if list_name == "bounces":
        code = _code(item.get("code"))
        error = str(item.get("error") or "").strip()
        words = " ".join(part for part in (str(code or ""), error) if part)
        detail = f"on Mailgun's bounce list for {domain}" + (f": {words}" if words else "")
        return RemoteSuppression(address, "bounce", code, detail, when)
    if list_name == "unsubscribes":
        if "*" not in _tags(item):
            return None
        detail = f"on Mailgun's unsubscribe list for {domain}"
        return RemoteSuppression(address, "unsubscribe", None, detail, when)
    detail = f"on Mailgun's complaint list for {domain}"
    return RemoteSuppression(address, "complaint", None, detail, when)


def _mailgun(config: ProviderConfig) -> MailgunConfig:
    if not isinstance(config, MailgunConfig):
        raise TypeError(f"not a Mailgun configuration: {type(config).__name__}")
    return config


class MailgunSuppressionLists(SuppressionLists):
    """Bounces, unsubscribes and complaints of the configuration's sending domain."""

    def __init__(self, client: MailgunClient) -> None:
        self.client = client

    async def pages(self, config: ProviderConfig) -> AsyncIterator[list[RemoteSuppression]]:
        mailgun = _mailgun(config)
        for list_name, _reason in LISTS:
            url: str | None = None
            for _ in range(MAX_PAGES):
                items, next_url = await self.client.suppressions_page(
                    mailgun, list_name, url=url, limit=PAGE_LIMIT
                )
                if not items:
                    break
                found = [to_suppression(list_name, item, mailgun.domain) for item in items]
                yield [entry for entry in found if entry is not None]
                if not next_url or next_url == url:
                    break
                url = next_url

    async def remove(self, config: ProviderConfig, address: str) -> list[str]:
        mailgun = _mailgun(config)
        removed: list[str] = []
        for list_name, _reason in LISTS:
            if await self.client.delete_suppression(mailgun, list_name, address):
                removed.append(list_name)
        return removed
