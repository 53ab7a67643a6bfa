"""The sandbox's memory: stored message copies, the event log with its indexes, suppressions,
the account's domains, tags, registered webhooks (domain and account level) and request
counters.

Everything lives in plain dicts and lists, guarded by nothing but the event loop: every
mutation happens on the loop that serves the app.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from tidings.sandbox.domains import DomainRecord
from tidings.sandbox.suppressions import Suppressions

JSON = dict[str, Any]

WEBHOOK_KINDS: tuple[str, ...] = (
    "accepted",
    "delivered",
    "permanent_fail",
    "temporary_fail",
    "opened",
    "clicked",
    "unsubscribed",
    "complained",
)


@dataclass(slots=True)
class Part:
    """An attachment or inline part as received."""

    filename: str
    content_type: str
    data: bytes
    sha256: str = ""

    def __post_init__(self) -> None:
        if not self.sha256:
            self.sha256 = hashlib.sha256(self.data).hexdigest()

    def describe(self) -> JSON:
        return {
            "filename": self.filename,
            "content_type": self.content_type,
            "size": len(self.data),
            "sha256": self.sha256,
        }


@dataclass(slots=True)
class MessageCopy:
    """One recipient's copy of an accepted message (personalised if batch sending)."""

    key: int
    message_id: str  # without angle brackets
    domain: str
    recipient: str
    sender: str
    to: list[str]
    cc: list[str]
    bcc: list[str]
    subject: str
    text: str | None
    html: str | None
    amp_html: str | None
    template: str | None
    tags: list[str]
    headers: dict[str, str]
    variables: dict[str, str]
    options: dict[str, str]
    attachments: list[Part]
    inline: list[Part]
    received_at: float
    size: int
    test_mode: bool
    # Pieces every event of this copy shares (message headers, envelope, flags …), built once.
    shared: JSON = field(default_factory=dict)
    # When an ``o:deliverytime`` send is due (epoch seconds), else None.
    scheduled_for: float | None = None
    # Every recipient of the message (to, cc, bcc), as events list them in message.recipients.
    recipients: list[str] = field(default_factory=list)
    # The message as the client sent it, for ``messages.mime`` sends (else built on demand).
    mime: bytes | None = None

    def describe(self) -> JSON:
        return {
            "key": self.key,
            "id": self.message_id,
            "message_id": f"<{self.message_id}>",
            "domain": self.domain,
            "recipient": self.recipient,
            "from": self.sender,
            "to": self.to,
            "cc": self.cc,
            "bcc": self.bcc,
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
            "amp_html": self.amp_html,
            "template": self.template,
            "tags": self.tags,
            "headers": self.headers,
            "variables": self.variables,
            "options": self.options,
            "attachments": [part.describe() for part in self.attachments],
            "inline": [part.describe() for part in self.inline],
            "received_at": self.received_at,
        }


@dataclass(slots=True)
class EventRecord:
    """An event as the Events API and webhooks show it, with its place in the log."""

    seq: int
    timestamp: float
    item: JSON


@dataclass
class DomainLog:
    """One domain's events in log order (by seq, hence by timestamp), with two indexes."""

    records: list[EventRecord] = field(default_factory=list)
    by_message: dict[str, list[EventRecord]] = field(default_factory=lambda: defaultdict(list))
    by_recipient: dict[str, list[EventRecord]] = field(default_factory=lambda: defaultdict(list))

    def add(self, record: EventRecord, message_id: str, recipient: str) -> None:
        self.records.append(record)
        self.by_message[message_id].append(record)
        self.by_recipient[recipient.lower()].append(record)


@dataclass(slots=True)
class TagRecord:
    """A tag of a domain: created by the first send that carries it."""

    tag: str
    first_seen: float
    last_seen: float
    description: str = ""


@dataclass(slots=True)
class AccountWebhook:
    """An account-level webhook (``/v1/webhooks``): one URL for some event kinds, on every
    domain of the account."""

    webhook_id: str
    url: str
    event_types: list[str]
    description: str
    created_at: float


class Store:
    """Messages, events, suppressions and webhooks of every domain the sandbox serves."""

    def __init__(self, domains: list[str]) -> None:
        self.domains = set(domains)
        self.messages: list[MessageCopy] = []
        self.messages_by_id: dict[str, list[MessageCopy]] = defaultdict(list)
        self.messages_by_key: dict[int, MessageCopy] = {}
        self.logs: dict[str, DomainLog] = {domain: DomainLog() for domain in domains}
        self.suppressions = Suppressions(self.domains)  # bounces, unsubscribes, ...
        self.webhooks: dict[str, dict[str, list[str]]] = {domain: {} for domain in domains}
        now = time.time()
        self.domain_records: dict[str, DomainRecord] = {
            domain: DomainRecord(domain, created_at=now) for domain in domains
        }
        self.tags: dict[str, dict[str, TagRecord]] = {domain: {} for domain in domains}
        self.account_webhooks: dict[str, AccountWebhook] = {}
        self.request_counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.webhooks_posted = 0
        self.webhook_answers: dict[str, int] = defaultdict(int)
        self._next_key = 1
        self._next_seq = 1
        self._last_timestamp = 0.0

    # -- messages -------------------------------------------------------------------------

    def next_key(self) -> int:
        key = self._next_key
        self._next_key += 1
        return key

    def add_message(self, copy: MessageCopy) -> None:
        self.messages.append(copy)
        self.messages_by_id[copy.message_id].append(copy)
        self.messages_by_key[copy.key] = copy

    def reset(self) -> int:
        """Forget messages, events and suppressions; keep webhooks, counters and faults."""
        count = len(self.messages)
        self.messages.clear()
        self.messages_by_id.clear()
        self.messages_by_key.clear()
        self.logs = {domain: DomainLog() for domain in self.domains}
        self.suppressions.clear()
        self.tags = {domain: {} for domain in self.domains}
        return count

    # -- domains --------------------------------------------------------------------------

    def add_domain(self, record: DomainRecord) -> None:
        """A new domain of the account, with nothing sent and no webhooks."""
        name = record.name
        self.domains.add(name)
        self.domain_records[name] = record
        self.logs[name] = DomainLog()
        self.webhooks[name] = {}
        self.tags[name] = {}

    def remove_domain(self, name: str) -> None:
        """Forget a domain and everything sent from it (pending steps then find their copy
        gone and stop)."""
        self.domains.discard(name)
        for table in (self.domain_records, self.logs, self.webhooks, self.tags):
            table.pop(name, None)
        kept = [copy for copy in self.messages if copy.domain != name]
        if len(kept) != len(self.messages):
            self.messages[:] = kept
            self.messages_by_key = {copy.key: copy for copy in kept}
            self.messages_by_id = defaultdict(list)
            for copy in kept:
                self.messages_by_id[copy.message_id].append(copy)
        self.suppressions.forget(name)

    # -- tags -----------------------------------------------------------------------------

    def note_tags(self, domain: str, tags: list[str], now: float) -> None:
        """Tags are created on the fly by the sends that carry them (case-insensitively)."""
        table = self.tags.get(domain)
        if table is None:
            return
        for tag in tags:
            key = tag.lower()
            record = table.get(key)
            if record is None:
                table[key] = TagRecord(tag, first_seen=now, last_seen=now)
            else:
                record.last_seen = now

    # -- webhooks -------------------------------------------------------------------------

    def webhook_urls(self, domain: str, kind: str) -> list[str]:
        """The URLs an event of ``kind`` on ``domain`` is posted to: the domain's, then the
        account's, each URL once ("deduplicated by event type, across account and domain
        levels")."""
        urls = list(self.webhooks.get(domain, {}).get(kind, ()))
        for hook in self.account_webhooks.values():
            if kind in hook.event_types and hook.url not in urls:
                urls.append(hook.url)
        return urls

    # -- events ---------------------------------------------------------------------------

    def add_event(self, domain: str, item: JSON, timestamp: float) -> EventRecord:
        """Append an event; timestamps never go backwards so that the log stays sorted."""
        timestamp = max(timestamp, self._last_timestamp)
        self._last_timestamp = timestamp
        item["timestamp"] = timestamp
        record = EventRecord(self._next_seq, timestamp, item)
        self._next_seq += 1
        message_id = item["message"]["headers"]["message-id"]
        self.logs[domain].add(record, message_id, item.get("recipient", ""))
        return record

    def events_of_message(self, message_id: str) -> list[JSON]:
        copies = self.messages_by_id.get(message_id)
        if not copies:
            return []
        log = self.logs.get(copies[0].domain)
        if log is None:
            return []
        return [record.item for record in log.by_message.get(message_id, [])]

    # -- counters -------------------------------------------------------------------------

    def count_request(self, route: str, status: int | str) -> None:
        self.request_counts[route][str(status)] += 1

    def count_webhook(self, answer: str) -> None:
        self.webhooks_posted += 1
        self.webhook_answers[answer] += 1

    def stats(self) -> JSON:
        return {
            "requests": {route: dict(counts) for route, counts in self.request_counts.items()},
            "webhooks": {"posted": self.webhooks_posted, "answers": dict(self.webhook_answers)},
        }
