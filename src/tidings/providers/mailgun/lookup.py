"""Finding a send whose answer was lost: Mailgun's event log, searched by the Tidings id.

Every request Tidings makes carries ``v:tidings-id``; Mailgun returns it in each event's
``user-variables``. So an attempt that got no answer can be settled by reading the
recipient's events from just before the attempt started.
"""

from __future__ import annotations

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
