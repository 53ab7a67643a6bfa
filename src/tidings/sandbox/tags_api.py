"""Mailgun's tags API: ``/v3/{domain}/tags`` (list with paging), ``/v3/{domain}/tags/{tag}``
(get, update the description, delete), ``/v3/{domain}/tags/{tag}/stats`` and
``/v3/{domain}/tags/{tag}/stats/aggregates/{countries|providers|devices}``.

Tags are created by the sends that carry them (``o:tag``); their statistics are computed
from the events the sandbox recorded, so deleting a tag keeps its statistics, as at Mailgun.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from urllib.parse import urlencode

from starlette.requests import Request

from tidings.sandbox.apiroute import (
    Fields,
    integer,
    mailgun_endpoint,
    one,
    query_fields,
    read_fields,
    refuse_unknown,
)
from tidings.sandbox.core import Sandbox
from tidings.sandbox.errors import MailgunError, domain_not_found
from tidings.sandbox.eventquery import parse_time
from tidings.sandbox.messages_api import Endpoint
from tidings.sandbox.state import JSON, TagRecord
from tidings.sandbox.tags import (
    DURATION,
    RESOLUTIONS,
    STAT_EVENTS,
    Window,
    aggregates,
    months_before,
    stats_time,
    tagged,
    time_series,
)
from tidings.sandbox.urls import api_base

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_POINTS = 10_000
WEEK = 7 * 86400
_PAGES = ("first", "last", "next", "prev")


def _iso(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def describe(record: TagRecord) -> JSON:
    return {
        "tag": record.tag,
        "description": record.description,
        "first-seen": _iso(record.first_seen),
        "last-seen": _iso(record.last_seen),
    }


def tags_endpoints(sandbox: Sandbox) -> dict[str, Endpoint]:
    store = sandbox.store

    def table_of(request: Request) -> dict[str, TagRecord]:
        domain: str = request.path_params["domain"]
        if domain not in store.domains:
            raise domain_not_found(domain)
        return store.tags[domain]

    def record_of(request: Request) -> TagRecord:
        tag: str = request.path_params["tag"]
        record = table_of(request).get(tag.lower())
        if record is None:
            raise MailgunError(404, "tag not found")
        return record

    async def listing(request: Request) -> tuple[object, int]:
        table = table_of(request)
        fields = query_fields(request)
        refuse_unknown(fields, ("limit", "page", "tag", "prefix"))
        limit = integer(one(fields, "limit"), "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        page = one(fields, "page") or "first"
        if page not in _PAGES:
            raise MailgunError(400, f"Invalid page: '{page}' (first, last, next, prev)")
        pivot = (one(fields, "tag") or "").lower()
        if page in ("next", "prev") and "tag" not in dict(fields):
            raise MailgunError(400, f"page={page} needs the tag to page from (tag=)")
        prefix = one(fields, "prefix") or ""
        names = sorted(k for k in table if k.startswith(prefix.lower()))
        if page == "first":
            chosen = names[:limit]
        elif page == "last":
            chosen = names[-limit:]
        elif page == "next":
            chosen = [n for n in names if n > pivot][:limit]
        else:
            chosen = [n for n in names if n < pivot][-limit:]
        base = f"{api_base(request)}/v3/{request.path_params['domain']}/tags"

        def link(which: str, tag: str | None) -> str:
            query: dict[str, str | int] = {"page": which, "limit": limit}
            if tag is not None:
                query["tag"] = tag
            if prefix:
                query["prefix"] = prefix
            return f"{base}?{urlencode(query)}"

        # An empty page keeps its pivot, so that following `next` later finds new tags.
        after = table[chosen[-1]].tag if chosen else pivot
        before = table[chosen[0]].tag if chosen else pivot
        body = {
            "items": [describe(table[n]) for n in chosen],
            "paging": {
                "first": link("first", None),
                "last": link("last", None),
                "next": link("next", after),
                "previous": link("prev", before),
            },
        }
        return body, 200

    async def one_tag(request: Request) -> tuple[object, int]:
        record = record_of(request)
        if request.method == "GET":
            refuse_unknown(query_fields(request), ())
            return describe(record), 200
        if request.method == "PUT":
            fields = await read_fields(request) + query_fields(request)
            refuse_unknown(fields, ("description",))
            description = one(fields, "description")
            if description is None:
                raise MailgunError(400, "description parameter is missing")
            record.description = description
            return {"message": "Tag updated"}, 200
        del table_of(request)[record.tag.lower()]
        return {"message": "Tag deleted"}, 200

    def events_of(request: Request) -> tuple[str, str, list[JSON]]:
        """The tag's name, description and events; a tag deleted since keeps its events."""
        domain: str = request.path_params["domain"]
        tag: str = request.path_params["tag"]
        if domain not in store.domains:
            raise domain_not_found(domain)
        items = tagged((record.item for record in store.logs[domain].records), tag)
        record = store.tags[domain].get(tag.lower())
        if record is None and not items:
            raise MailgunError(404, "tag not found")
        description = record.description if record else ""
        return (record.tag if record else tag), description, items

    async def stats(request: Request) -> tuple[object, int]:
        fields = query_fields(request)
        refuse_unknown(fields, ("event", "start", "end", "resolution", "duration"))
        events = _events(fields)
        window = _window(fields)
        tag, description, items = events_of(request)
        body = {
            "tag": tag,
            "description": description,
            "start": stats_time(window.start),
            "end": stats_time(window.end),
            "resolution": window.resolution,
            "stats": time_series(items, events, window),
        }
        return body, 200

    async def aggregate(request: Request) -> tuple[object, int]:
        refuse_unknown(query_fields(request), ())
        by: str = request.path_params["by"]
        if by not in ("countries", "providers", "devices"):
            raise MailgunError(404, f"Unknown aggregate: {by} (countries, providers, devices)")
        tag, _, items = events_of(request)
        return {by: aggregates(items, by), "tag": tag}, 200

    base = "{method} /v3/{domain}/tags"
    return {
        "list": mailgun_endpoint(sandbox, base, listing),
        "one": mailgun_endpoint(sandbox, base + "/{tag}", one_tag),
        "stats": mailgun_endpoint(sandbox, base + "/{tag}/stats", stats),
        "aggregates": mailgun_endpoint(sandbox, base + "/{tag}/stats/aggregates/{by}", aggregate),
    }


def _events(fields: Fields) -> list[str]:
    events: list[str] = []
    for key, value in fields:
        if key != "event":
            continue
        for event in value.split(","):
            event = event.strip()
            if event not in STAT_EVENTS:
                raise MailgunError(
                    400, f"Invalid event: '{event}' (one of {', '.join(STAT_EVENTS)})"
                )
            if event not in events:
                events.append(event)
    if not events:
        raise MailgunError(400, "event parameter is missing")
    return events


def _window(fields: Fields) -> Window:
    """``end`` (default now), then ``duration`` or ``start`` (default 7 days before) and the
    resolution (default ``day``; a duration sets it from its unit)."""
    raw_end = one(fields, "end")
    end = parse_time(raw_end, "end") if raw_end else time.time()
    resolution = one(fields, "resolution") or "day"
    if resolution not in RESOLUTIONS:
        raise MailgunError(400, f"Invalid resolution: '{resolution}' (hour, day or month)")
    duration = one(fields, "duration")
    if duration is not None:
        match = DURATION.match(duration)
        if not match:
            raise MailgunError(400, f"Invalid duration: '{duration}' (like 24h, 7d or 2m)")
        count, unit = int(match.group(1)), match.group(2)
        resolution = {"h": "hour", "d": "day", "m": "month"}[unit]
        if unit == "m":
            start = months_before(end, count)
        else:
            start = end - count * (3600 if unit == "h" else 86400)
    else:
        raw_start = one(fields, "start")
        start = parse_time(raw_start, "start") if raw_start else end - WEEK
    if start > end:
        raise MailgunError(400, "start must not be after end")
    unit_seconds = {"hour": 3600, "day": 86400, "month": 28 * 86400}[resolution]
    if (end - start) / unit_seconds > MAX_POINTS:
        raise MailgunError(400, f"Too many {resolution}s between start and end")
    return Window(start, end, resolution)
