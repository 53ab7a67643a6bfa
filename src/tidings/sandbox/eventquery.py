"""The Events API's query language and paging, independent of HTTP.

A query is a time window (``begin``/``end``), a direction, a page size and filters. Pages
are addressed by an opaque token holding the query and a pivot: the sequence number of the
event a page starts after ("fwd") or ends before ("back"), in traversal order. Events are
kept in log order (timestamps never decrease), so the window and the pivot are both binary
searches; filters are checked item by item.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from tidings.sandbox.errors import MailgunError
from tidings.sandbox.state import JSON, DomainLog, EventRecord

MAX_LIMIT = 300
DEFAULT_LIMIT = 300
FILTER_FIELDS = (
    "event",
    "severity",
    "recipient",
    "recipients",
    "message-id",
    "tags",
    "from",
    "to",
    "subject",
    "list",
    "attachment",
    "size",
)
START = "start"  # a pivot before the first event of the window: nothing lies before it

_OR = re.compile(r"\s+OR\s+")
# One comparison of a size expression: ``>10000``, ``<= 2048``, ``5000``.
_COMPARISON = re.compile(r"(>=|<=|>|<|=)?\s*(\d+)")


@dataclass(frozen=True)
class EventQuery:
    lo: float | None  # earliest timestamp, None = no bound
    hi: float | None  # latest timestamp, None = open (up to "now")
    ascending: bool
    limit: int
    filters: dict[str, str]

    def to_json(self) -> JSON:
        return {
            "lo": self.lo,
            "hi": self.hi,
            "a": self.ascending,
            "l": self.limit,
            "f": self.filters,
        }

    @classmethod
    def from_json(cls, data: Any) -> EventQuery:
        return cls(data["lo"], data["hi"], bool(data["a"]), int(data["l"]), dict(data["f"]))


@dataclass(frozen=True)
class Position:
    mode: str  # "fwd": items after pivot; "back": items before pivot (nearest first)
    pivot: int | str | None  # a seq, START, or None (the window's start for fwd, end for back)


def parse_time(raw: str, name: str) -> float:
    """Epoch seconds or an RFC 2822 date, as Mailgun accepts."""
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(raw).timestamp()
    except (TypeError, ValueError, IndexError) as exc:
        raise MailgunError(
            400, f"Invalid {name}: '{raw}' is not an RFC 2822 date or epoch seconds"
        ) from exc


def parse_query(params: Mapping[str, str]) -> EventQuery:
    begin = parse_time(params["begin"], "begin") if params.get("begin") else None
    end = parse_time(params["end"], "end") if params.get("end") else None
    raw_ascending = params.get("ascending")
    if raw_ascending is None:
        ascending = begin is not None and end is not None and begin < end
    elif raw_ascending.lower() in ("yes", "true", "1"):
        ascending = True
    elif raw_ascending.lower() in ("no", "false", "0"):
        ascending = False
    else:
        raise MailgunError(400, "Invalid ascending: expected 'yes' or 'no'")
    raw_limit = params.get("limit")
    if raw_limit is None:
        limit = DEFAULT_LIMIT
    else:
        try:
            limit = int(raw_limit)
        except ValueError:
            limit = -1
        if not 1 <= limit <= MAX_LIMIT:
            raise MailgunError(400, f"Invalid limit: must be an integer between 1 and {MAX_LIMIT}")
    # In an ascending search begin is the earliest time; in a descending one, the latest.
    lo, hi = (begin, end) if ascending else (end, begin)
    if lo is not None and hi is not None and lo > hi:
        lo, hi = hi, lo
    filters = {name: params[name] for name in FILTER_FIELDS if params.get(name)}
    if "size" in filters:
        size_ranges(filters["size"])  # refuse a size expression that is not one
    return EventQuery(lo, hi, ascending, limit, filters)


def encode_token(query: EventQuery, position: Position) -> str:
    raw = json.dumps({"q": query.to_json(), "m": position.mode, "p": position.pivot})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_token(token: str) -> tuple[EventQuery, Position]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        position = Position(str(data["m"]), data["p"])
        if position.mode not in ("fwd", "back"):
            raise ValueError(position.mode)
        return EventQuery.from_json(data["q"]), position
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise MailgunError(400, "Invalid page token") from exc


# -- filters ------------------------------------------------------------------------------


def _terms(expression: str) -> tuple[list[str], list[str]]:
    wanted: list[str] = []
    unwanted: list[str] = []
    for term in _OR.split(expression.strip()):
        term = term.strip()
        if term.upper().startswith("NOT "):
            unwanted.append(term[4:].strip().lower())
        elif term:
            wanted.append(term.lower())
    return wanted, unwanted


def size_ranges(expression: str) -> list[list[tuple[str, int]]]:
    """``size`` alternatives (OR) of comparisons that must all hold (space or AND between)."""
    alternatives: list[list[tuple[str, int]]] = []
    for alternative in _OR.split(expression.strip()):
        comparisons: list[tuple[str, int]] = []
        for term in re.split(r"\s+AND\s+|\s+(?=[<>=])", alternative.strip()):
            match = _COMPARISON.fullmatch(term.strip())
            if match is None:
                raise MailgunError(
                    400,
                    f"Invalid size: '{expression}' is not a size expression "
                    "(e.g. '>10000', '>1000 <5000', '<100 OR >5000')",
                )
            comparisons.append((match.group(1) or "=", int(match.group(2))))
        alternatives.append(comparisons)
    return alternatives


def _size_matches(size: int, alternatives: list[list[tuple[str, int]]]) -> bool:
    def holds(op: str, bound: int) -> bool:
        if op == ">":
            return size > bound
        if op == "<":
            return size < bound
        if op == ">=":
            return size >= bound
        if op == "<=":
            return size <= bound
        return size == bound

    return any(all(holds(op, bound) for op, bound in comparisons) for comparisons in alternatives)


def _field_values(item: JSON, name: str) -> list[str]:
    headers = item["message"]["headers"]
    if name == "attachment":
        return [str(a.get("filename", "")).lower() for a in item["message"].get("attachments", [])]
    if name == "recipients":
        return [str(r).lower() for r in item["message"].get("recipients", [])]
    if name == "list":
        mailing_list = item.get("mailing-list") or {}
        return [str(mailing_list["address"]).lower()] if "address" in mailing_list else []
    if name == "tags":
        return [str(tag).lower() for tag in item.get("tags", [])]
    if name == "message-id":
        return [str(headers.get("message-id", "")).lower()]
    if name in ("from", "to", "subject"):
        return [str(headers.get(name, "")).lower()]
    value = item.get(name)
    return [] if value is None else [str(value).lower()]


def compile_filters(filters: Mapping[str, str]) -> Callable[[JSON], bool]:
    """One predicate for all filters: every filter must hold; a filter holds if any of its
    OR terms matches and none of its NOT terms does. from/to/subject match by substring."""
    checks: list[tuple[str, list[str], list[str], bool]] = []
    sizes = size_ranges(filters["size"]) if "size" in filters else None
    for name, expression in filters.items():
        if name == "size":
            continue
        wanted, unwanted = _terms(expression)
        if name == "message-id":
            wanted = [w.strip("<>") for w in wanted]
            unwanted = [u.strip("<>") for u in unwanted]
        checks.append((name, wanted, unwanted, name in ("from", "to", "subject")))

    def matches(item: JSON) -> bool:
        if sizes is not None and not _size_matches(int(item["message"].get("size", 0)), sizes):
            return False
        for name, wanted, unwanted, substring in checks:
            values = _field_values(item, name)
            if wanted and not any(_hit(term, values, substring) for term in wanted):
                return False
            if any(_hit(term, values, substring) for term in unwanted):
                return False
        return True

    return matches


def _hit(term: str, values: list[str], substring: bool) -> bool:
    if substring:
        return any(term in value for value in values)
    return term in values


def _simple(expression: str | None) -> str | None:
    """The single value of a filter without OR/NOT (case kept), usable with an index."""
    if expression is None:
        return None
    value = expression.strip()
    if _OR.search(value) or value.upper().startswith("NOT "):
        return None
    return value


# -- paging -------------------------------------------------------------------------------


def run_query(
    log: DomainLog, query: EventQuery, position: Position, visible_until: float
) -> list[EventRecord]:
    """The page at ``position``, in traversal order."""
    if position.pivot == START:
        return []
    candidates = _candidates(log, query.filters)
    hi = visible_until if query.hi is None else min(query.hi, visible_until)
    start = 0 if query.lo is None else bisect.bisect_left(candidates, query.lo, key=_ts)
    stop = bisect.bisect_right(candidates, hi, key=_ts)
    pivot = position.pivot if isinstance(position.pivot, int) else None
    matches = compile_filters(query.filters)
    forward_in_seq = query.ascending == (position.mode == "fwd")
    if forward_in_seq:
        if pivot is not None:
            start = max(start, bisect.bisect_right(candidates, pivot, key=_seq))
        indexes: range = range(start, stop)
    else:
        if pivot is not None:
            stop = min(stop, bisect.bisect_left(candidates, pivot, key=_seq))
        indexes = range(stop - 1, start - 1, -1)
    page: list[EventRecord] = []
    for index in indexes:
        record = candidates[index]
        if matches(record.item):
            page.append(record)
            if len(page) == query.limit:
                break
    if position.mode == "back":
        page.reverse()  # gathered nearest-first; a page is always in traversal order
    return page


def neighbours(page: list[EventRecord], position: Position) -> tuple[Position, Position]:
    """The positions of the next and previous pages."""
    if page:
        return Position("fwd", page[-1].seq), Position("back", page[0].seq)
    if position.mode == "fwd":
        # Nothing (yet) after the pivot: next asks again from the same place.
        return position, Position("back", position.pivot if position.pivot is not None else START)
    return Position("fwd", None), Position("back", START)


def _candidates(log: DomainLog, filters: Mapping[str, str]) -> list[EventRecord]:
    message_id = _simple(filters.get("message-id"))
    if message_id is not None:
        return log.by_message.get(message_id.strip("<>"), [])
    recipient = _simple(filters.get("recipient"))
    if recipient is not None:
        return log.by_recipient.get(recipient.lower(), [])
    return log.records


def _ts(record: EventRecord) -> float:
    return record.timestamp


def _seq(record: EventRecord) -> int:
    return record.seq
