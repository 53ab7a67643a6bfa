"""Tag statistics computed from the events the sandbox really recorded: the time series of
``/v3/{domain}/tags/{tag}/stats`` and the aggregates by country, provider and device.

Pure functions over event items; ``tags_api`` validates the query and shapes the answer.
"""

from __future__ import annotations

import calendar
import re
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]

STAT_EVENTS = (
    "accepted",
    "delivered",
    "failed",
    "opened",
    "clicked",
    "unsubscribed",
    "complained",
    "stored",
)
RESOLUTIONS = ("hour", "day", "month")
DURATION = re.compile(r"^([0-9]+)([hdm])$")
_UNIT = {"h": "hour", "d": "day", "m": "month"}
# How a permanent failure's reason is counted (Mailgun's stats keys).
_PERMANENT_KEYS = {
    "bounce": "bounce",
    "suppress-bounce": "suppress-bounce",
    "suppress-unsubscribe": "suppress-unsubscribe",
    "suppress-complaint": "suppress-complaint",
    "old": "delayed-bounce",
}
_ENGAGEMENT = ("clicked", "complained", "opened", "unique_clicked", "unique_opened", "unsubscribed")


def stats_time(epoch: float) -> str:
    """``Tue, 14 Feb 2012 00:00:00 UTC``: how the stats API writes times."""
    return time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime(epoch))


def bucket_start(epoch: float, resolution: str) -> float:
    t = time.gmtime(epoch)
    if resolution == "hour":
        parts = (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour)
    elif resolution == "day":
        parts = (t.tm_year, t.tm_mon, t.tm_mday, 0)
    else:
        parts = (t.tm_year, t.tm_mon, 1, 0)
    return float(calendar.timegm((*parts, 0, 0, 0, 0, 0)))


def next_bucket(start: float, resolution: str) -> float:
    if resolution == "hour":
        return start + 3600
    if resolution == "day":
        return start + 86400
    t = time.gmtime(start)
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return float(calendar.timegm((year, month, 1, 0, 0, 0, 0, 0, 0)))


def months_before(epoch: float, months: int) -> float:
    t = time.gmtime(epoch)
    index = t.tm_year * 12 + (t.tm_mon - 1) - months
    year, month = divmod(index, 12)
    day = min(t.tm_mday, calendar.monthrange(year, month + 1)[1])
    return float(calendar.timegm((year, month + 1, day, t.tm_hour, t.tm_min, t.tm_sec, 0, 0, 0)))


@dataclass(frozen=True, slots=True)
class Window:
    start: float
    end: float
    resolution: str


def buckets(window: Window) -> list[float]:
    starts: list[float] = []
    current = bucket_start(window.start, window.resolution)
    while current <= window.end:
        starts.append(current)
        current = next_bucket(current, window.resolution)
    return starts


def tagged(items: Iterable[JSON], tag: str) -> list[JSON]:
    """The events of messages carrying ``tag`` (tags compare case-insensitively)."""
    wanted = tag.lower()
    return [item for item in items if any(t.lower() == wanted for t in item.get("tags") or ())]


def _empty(event: str) -> JSON:
    if event == "accepted":
        return {"incoming": 0, "outgoing": 0, "total": 0}
    if event == "delivered":
        return {"smtp": 0, "http": 0, "optimized": 0, "total": 0}
    if event == "failed":
        return {
            "temporary": {"espblock": 0, "total": 0},
            "permanent": {
                "suppress-bounce": 0,
                "suppress-unsubscribe": 0,
                "suppress-complaint": 0,
                "bounce": 0,
                "delayed-bounce": 0,
                "webhook": 0,
                "optimized": 0,
                "total": 0,
            },
        }
    if event in ("opened", "clicked"):
        return {"total": 0, "unique": 0}
    return {"total": 0}


def _count(entry: JSON, item: JSON, seen: dict[str, set[tuple[str, str]]]) -> None:
    event = str(item["event"])
    counters = entry[event]
    if event == "accepted":
        counters["outgoing"] += 1  # every sandbox send is an authenticated API send
    elif event == "delivered":
        counters["smtp"] += 1
    elif event == "failed":
        if item.get("severity") == "temporary":
            group = counters["temporary"]
            if item.get("reason") == "espblock":
                group["espblock"] += 1
        else:
            group = counters["permanent"]
            key = _PERMANENT_KEYS.get(str(item.get("reason")))
            if key:
                group[key] += 1
        group["total"] += 1
        return
    elif event in ("opened", "clicked"):
        who = (str(item["message"]["headers"]["message-id"]), str(item.get("recipient")))
        if who not in seen[event]:
            seen[event].add(who)
            counters["unique"] += 1
    counters["total"] += 1


def time_series(items: list[JSON], events: list[str], window: Window) -> list[JSON]:
    """One entry per bucket of the window, each with the counters of ``events``."""
    starts = buckets(window)
    series = [{"time": stats_time(start), **{e: _empty(e) for e in events}} for start in starts]
    seen: dict[int, dict[str, set[tuple[str, str]]]] = defaultdict(lambda: defaultdict(set))
    index = {start: n for n, start in enumerate(starts)}
    for item in items:
        event = str(item.get("event"))
        stamp = float(item["timestamp"])
        if event not in events or not window.start <= stamp <= window.end:
            continue
        slot = index.get(bucket_start(stamp, window.resolution))
        if slot is not None:
            _count(series[slot], item, seen[slot])
    return series


def _engagement(counters: JSON, item: JSON, seen: dict[str, set[Any]], key: str) -> None:
    event = str(item["event"])
    if event not in counters:
        return
    counters[event] += 1
    if event in ("opened", "clicked"):
        who = (key, item["message"]["headers"]["message-id"], item.get("recipient"))
        if who not in seen[event]:
            seen[event].add(who)
            counters[f"unique_{event}"] += 1


def aggregates(items: list[JSON], by: str) -> JSON:
    """Counters per country (``countries``), recipient domain (``providers``) or device
    type (``devices``). Only events that carry the dimension count."""
    table: dict[str, JSON] = {}
    seen: dict[str, set[Any]] = defaultdict(set)
    for item in items:
        if by == "countries":
            key = str((item.get("geolocation") or {}).get("country") or "").lower()
        elif by == "devices":
            key = str((item.get("client-info") or {}).get("device-type") or "")
        else:
            key = str(item.get("recipient-domain") or "")
        if not key:
            continue
        if key not in table:
            names = _ENGAGEMENT + (("accepted", "delivered") if by == "providers" else ())
            table[key] = dict.fromkeys(sorted(names), 0)
        _engagement(table[key], item, seen, key)
    return table
