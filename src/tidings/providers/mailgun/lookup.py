"""Finding a send whose answer was lost: Mailgun's event log, searched by the Tidings id.

Every request Tidings makes carries ``v:tidings-id``; Mailgun returns it in each event's
``user-variables``. So an attempt that got no answer can be settled by reading the
recipient's events from just before the attempt started. An unanswered batch is settled
by reading the domain's ``accepted`` events of the window once (every copy has one) and
matching every id; when the window holds more than a few pages, the ids not yet found are
looked up one by one, so that none is taken for not sent because it was not read.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from tidings.domain.events import EventKind
from tidings.providers.base import Found
from tidings.providers.mailgun.client import MailgunClient
from tidings.providers.mailgun.events import EventParseError, parse_event_item
from tidings.providers.mailgun.settings import MailgunConfig

# Any of these proves Mailgun took the message in.
_PROOF = frozenset(
    {
        EventKind.ACCEPTED,
        EventKind.DELIVERED,
        EventKind.FAILED,
        EventKind.OPENED,
        EventKind.CLICKED,
        EventKind.COMPLAINED,
        EventKind.UNSUBSCRIBED,
        EventKind.STORED,
    }
)
MAX_PAGES = 20
# Pages of a window read for a batch before the rest is looked up one id at a time.
MAX_WINDOW_PAGES = 10


async def find_sent(
    client: MailgunClient,
    config: MailgunConfig,
    *,
    tidings_id: str,
    recipient: str | None,
    begin: datetime,
) -> Found | None:
    """The earliest event of the message ``tidings_id`` since ``begin``, if Mailgun has one."""
    filters = {"recipient": recipient} if recipient else {}
    page = await client.events_page(
        config, begin=begin.timestamp(), ascending=True, limit=300, filters=filters
    )
    for _ in range(MAX_PAGES):
        for item in page.items:
            try:
                event = parse_event_item(item)
            except EventParseError:
                continue
            if event.tidings_id == tidings_id and event.kind in _PROOF:
                return Found(at=event.timestamp, provider_message_id=event.provider_message_id)
        if not page.items or page.next_url is None:
            return None
        page = await client.events_next(config, page.next_url)
    return None


async def find_sent_many(
    client: MailgunClient,
    config: MailgunConfig,
    wanted: Mapping[str, str | None],
    *,
    begin: datetime,
) -> dict[str, Found]:
    """The earliest proof of each of ``wanted`` (Tidings id -> recipient) since ``begin``."""
    found: dict[str, Found] = {}
    page = await client.events_page(
        config, begin=begin.timestamp(), ascending=True, limit=300, filters={"event": "accepted"}
    )
    complete = False
    for _ in range(MAX_WINDOW_PAGES):
        for item in page.items:
            try:
                event = parse_event_item(item)
            except EventParseError:
                continue
            tidings_id = event.tidings_id
            if tidings_id is None or tidings_id not in wanted or tidings_id in found:
                continue
            if event.kind in _PROOF:
                found[tidings_id] = Found(
                    at=event.timestamp, provider_message_id=event.provider_message_id
                )
        if len(found) == len(wanted):
            return found
        if not page.items or page.next_url is None:
            complete = True
            break
        page = await client.events_next(config, page.next_url)
    if complete:
        return found
    for tidings_id, recipient in wanted.items():
        if tidings_id not in found:
            proof = await find_sent(
                client, config, tidings_id=tidings_id, recipient=recipient, begin=begin
            )
            if proof is not None:
                found[tidings_id] = proof
    return found
