"""The sandbox's suppression lists, as Mailgun keeps them per domain: bounces, unsubscribes
(per tag, ``*`` for every message), complaints, and the allowlist (addresses or whole
domains that are never put on the bounce list, and never suppressed here).

The rules a send meets live here too (:meth:`Suppressions.blocking`): a bounced address is
dropped with 605, an unsubscribed one with 606 (when it unsubscribed from everything, or from
one of the message's tags), one that complained with 607.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]

BOUNCES = "bounces"
UNSUBSCRIBES = "unsubscribes"
COMPLAINTS = "complaints"
ALLOWLIST = "whitelists"  # Mailgun's path; its documents call it the allowlist

# What blocks a send, in the order Mailgun checks (a guess: bounce first).
BOUNCE = "bounce"
UNSUBSCRIBE = "unsubscribe"
COMPLAINT = "complaint"

ALL_TAGS = "*"


def rfc822(timestamp: float) -> str:
    """Mailgun's suppression timestamps: ``Fri, 21 Oct 2011 11:02:55 UTC``."""
    return time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime(timestamp))


@dataclass(slots=True)
class Bounce:
    address: str
    code: str
    error: str
    created_at: float

    def item(self) -> JSON:
        return {
            "address": self.address,
            "code": self.code,
            "error": self.error,
            "created_at": rfc822(self.created_at),
        }


@dataclass(slots=True)
class Unsubscribe:
    address: str
    tags: list[str]
    created_at: float

    def item(self) -> JSON:
        return {
            "address": self.address,
            "tags": list(self.tags),
            "created_at": rfc822(self.created_at),
        }


@dataclass(slots=True)
class Complaint:
    address: str
    created_at: float

    def item(self) -> JSON:
        return {"address": self.address, "created_at": rfc822(self.created_at)}


@dataclass(slots=True)
class Allowed:
    value: str
    kind: str  # address | domain
    reason: str
    created_at: float

    def item(self) -> JSON:
        return {
            "value": self.value,
            "type": self.kind,
            "reason": self.reason,
            "createdAt": rfc822(self.created_at),
        }

    @property
    def address(self) -> str:
        # The key lists are paged by; an allowlist entry's is its value.
        return self.value


Entry = Bounce | Unsubscribe | Complaint | Allowed


@dataclass
class DomainLists:
    """One domain's four lists, keyed by lower-case address (or domain, for the allowlist)."""

    bounces: dict[str, Bounce] = field(default_factory=dict)
    unsubscribes: dict[str, Unsubscribe] = field(default_factory=dict)
    complaints: dict[str, Complaint] = field(default_factory=dict)
    allowlist: dict[str, Allowed] = field(default_factory=dict)

    def table(self, name: str) -> dict[str, Entry]:
        tables: dict[str, dict[str, Entry]] = {
            BOUNCES: self.bounces,  # type: ignore[dict-item]
            UNSUBSCRIBES: self.unsubscribes,  # type: ignore[dict-item]
            COMPLAINTS: self.complaints,  # type: ignore[dict-item]
            ALLOWLIST: self.allowlist,  # type: ignore[dict-item]
        }
        return tables[name]


class Suppressions:
    """Every served domain's lists."""

    def __init__(self, domains: set[str]) -> None:
        self._domains = domains
        self._lists: dict[str, DomainLists] = {}

    def of(self, domain: str) -> DomainLists:
        lists = self._lists.get(domain)
        if lists is None:
            lists = self._lists[domain] = DomainLists()
        return lists

    def clear(self) -> None:
        self._lists.clear()

    def forget(self, domain: str) -> None:
        """Drop a deleted domain's lists."""
        self._lists.pop(domain, None)

    # -- rules ----------------------------------------------------------------------------

    def allowed(self, domain: str, address: str) -> bool:
        lowered = address.lower()
        allow = self.of(domain).allowlist
        return lowered in allow or lowered.rpartition("@")[2] in allow

    def blocking(self, domain: str, address: str, tags: list[str]) -> str | None:
        """Which list stops a send to ``address`` with ``tags``: bounce, unsubscribe,
        complaint, or None. An allowlisted address or domain is never stopped."""
        lowered = address.lower()
        if self.allowed(domain, lowered):
            return None
        lists = self.of(domain)
        if lowered in lists.bounces:
            return BOUNCE
        unsubscribed = lists.unsubscribes.get(lowered)
        if unsubscribed is not None and (
            ALL_TAGS in unsubscribed.tags or any(tag in unsubscribed.tags for tag in tags)
        ):
            return UNSUBSCRIBE
        if lowered in lists.complaints:
            return COMPLAINT
        return None

    # -- what happens to messages puts addresses on the lists ------------------------------

    def add_bounce(
        self, domain: str, address: str, code: str = "550", error: str = "", at: float | None = None
    ) -> bool:
        """Add or update a bounce; an allowlisted address is never added (as at Mailgun)."""
        if self.allowed(domain, address):
            return False
        lowered = address.lower()
        self.of(domain).bounces[lowered] = Bounce(lowered, code, error, at or time.time())
        return True

    def add_unsubscribe(
        self, domain: str, address: str, tags: list[str], at: float | None = None
    ) -> None:
        lowered = address.lower()
        lists = self.of(domain)
        current = lists.unsubscribes.get(lowered)
        if current is None:
            lists.unsubscribes[lowered] = Unsubscribe(
                lowered, list(dict.fromkeys(tags)) or [ALL_TAGS], at or time.time()
            )
            return
        for tag in tags:
            if tag not in current.tags:
                current.tags.append(tag)

    def add_complaint(self, domain: str, address: str, at: float | None = None) -> None:
        lowered = address.lower()
        self.of(domain).complaints[lowered] = Complaint(lowered, at or time.time())

    def add_allowed(
        self, domain: str, value: str, kind: str, reason: str = "", at: float | None = None
    ) -> None:
        lowered = value.lower()
        self.of(domain).allowlist[lowered] = Allowed(lowered, kind, reason, at or time.time())

    # -- paging ---------------------------------------------------------------------------

    def page(
        self,
        domain: str,
        name: str,
        *,
        limit: int,
        page: str,
        pivot: str | None,
        term: str | None,
    ) -> list[Entry]:
        """One page in alphabetical order, as Mailgun pages: ``first``, ``last``, or
        ``next``/``previous`` relative to the ``pivot`` address."""
        entries = sorted(self.of(domain).table(name).items())
        if term:
            entries = [(key, entry) for key, entry in entries if key.startswith(term.lower())]
        if page == "last":
            chosen = entries[-limit:]
        elif page == "next" and pivot is not None:
            chosen = [e for e in entries if e[0] > pivot.lower()][:limit]
        elif page == "previous" and pivot is not None:
            chosen = [e for e in entries if e[0] < pivot.lower()][-limit:]
        else:
            chosen = entries[:limit]
        return [entry for _key, entry in chosen]
