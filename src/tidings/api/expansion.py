"""Who a ``/send`` reaches: ``message.to`` read into entries, and expanded at accept time
into one target (one tracked message) per recipient.

An entry is either one recipient (``user_id``, ``email``: :mod:`tidings.domain.recipients`)
or a *group* that names many: ``list_id`` (the subscribers of a live list) or
``list_pattern`` (the subscribers of every live list the pattern matches). A group entry
may carry ``data``, laid over ``message.data`` for each of its members as a recipient's
``to.data`` is; it names no one itself, so ``user_id``, ``email`` and the other recipient
fields are refused on it.

Dedupe: a user gets one message per request. Every user named by a ``user_id`` entry keeps
their message(s) exactly as before (each such entry is one message, as without groups); a
group member whose ``user_id`` was already reached — by a ``user_id`` entry anywhere in
``to``, or by an earlier group (in ``to`` order; a pattern's lists in id order) — is
skipped. The first group that reaches a user is the one recorded for its message (its list
id for ``messages.list?list=``, its subscription's preferences under ``list_preferences``).

A ``list_id`` that names no list, or an archived one, is a 400 naming the field (a send
to it would reach no one); an empty list, and a pattern that matches no live list, reach no
one and are accepted (202, a request id, zero messages).

Adding a kind of group is one entry in :data:`GROUPS`: the recipient key, how its value is
checked, and how its members are read (``async (conn, value, limit) -> [GroupMember]``,
raising :class:`UnknownGroup` for a value that names nothing). The members function is
asked for ``room + 1 + already reached`` distinct users, so that "more than that" means
"over the limit" whatever the overlap; it may return them, or raise
:class:`GroupTooLarge`. ``to.audience_id`` is such a group: its members are the
profiles its filter matches now (:func:`tidings.store.audiences.members`); its ``filters``
(Courier's MEMBER_OF account_id) are refused by ``api/unhonoured.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tidings.domain.errors import ValidationError, key_path
from tidings.domain.lists import check_list_id, parse_pattern
from tidings.domain.recipients import Recipient, RecipientError, parse_recipient
from tidings.errors import BadRequest
from tidings.store import audiences as audiences_store
from tidings.store import lists as lists_store
from tidings.store.database import Conn


@dataclass(frozen=True, slots=True)
class GroupMember:
    """One user a group reaches, and through which list (None: not through a list)."""

    user_id: str
    list_id: str | None = None
    preferences: dict[str, Any] | None = None  # the list subscription's, exactly as given


# (conn, the entry's value, at most how many) -> distinct members, in a stable order.
Members = Callable[[Conn, str, int], Awaitable[list[GroupMember]]]


@dataclass(frozen=True, slots=True)
class Group:
    check: Callable[[Any, str], str]  # the value, its path -> the value; raises ValidationError
    members: Members


class UnknownGroup(Exception):
    """A group entry names nothing that can be sent to; the sentence says why."""


class GroupTooLarge(Exception):
    """A group has more members than it was asked for (the send is over its limit)."""


async def _list_members(conn: Conn, list_id: str, limit: int) -> list[GroupMember]:
    # A list id that names no list is a mistake worth a 400 (a typo would send to no one
    # and say 202); an archived list is halted. An empty list is fine: it reaches no one.
    state = await lists_store.state(conn, list_id)
    if state is None:
        raise UnknownGroup(
            f"there is no list '{list_id}' (create it with PUT /lists/{list_id}, or by "
            "subscribing someone to it)"
        )
    if state == "archived":
        raise UnknownGroup(
            f"list '{list_id}' is archived, which halts sends to it; restore it with "
            f"PUT /lists/{list_id}/restore"
        )
    return await _members_of_live(conn, list_id, limit)


async def _members_of_live(conn: Conn, list_id: str, limit: int) -> list[GroupMember]:
    found = await lists_store.members(conn, list_id, limit=limit)
    return [GroupMember(m.user_id, m.list_id, m.preferences) for m in found]


async def _pattern_members(conn: Conn, pattern: str, limit: int) -> list[GroupMember]:
    """Distinct users of every live list the pattern matches (the first list that has a
    user is theirs), at most ``limit``."""
    distinct: dict[str, GroupMember] = {}
    for list_id in await lists_store.matching(conn, parse_pattern(pattern)):
        if len(distinct) >= limit:
            break
        # At most len(distinct) of this list's users were seen in earlier lists, so this
        # many rows hold enough new ones to reach the limit, if the list has them.
        for member in await _members_of_live(conn, list_id, limit + len(distinct)):
            distinct.setdefault(member.user_id, member)
    return list(distinct.values())[:limit]


def _check_pattern(value: Any, path: str) -> str:
    parse_pattern(value, path)
    assert isinstance(value, str)
    return value


MAX_AUDIENCE_ID = 128  # the audiences table's key


def _check_audience_id(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(path, "must be a non-empty string")
    if len(value) > MAX_AUDIENCE_ID:
        raise ValidationError(path, f"must be at most {MAX_AUDIENCE_ID} characters")
    return value


async def _audience_members(conn: Conn, audience_id: str, limit: int) -> list[GroupMember]:
    try:
        found = await audiences_store.members(conn, audience_id, limit=limit)
    except audiences_store.UnknownAudience:
        raise UnknownGroup(
            f"there is no audience '{audience_id}' (create it with PUT /audiences/{audience_id})"
        ) from None
    except audiences_store.TooManyMembers:
        raise GroupTooLarge() from None
    return [GroupMember(m.user_id) for m in found]


GROUPS: dict[str, Group] = {
    "list_id": Group(check=check_list_id, members=_list_members),
    "list_pattern": Group(check=_check_pattern, members=_pattern_members),
    "audience_id": Group(check=_check_audience_id, members=_audience_members),
}
# What a group entry may carry besides its key (filters is refused by api/unhonoured.py).
_GROUP_FIELDS = ("data", "filters")


@dataclass(frozen=True, slots=True)
class Entry:
    """One item of ``message.to``: a recipient, or a group (``kind`` names it)."""

    raw: dict[str, Any]
    path: str
    recipient: Recipient | None = None
    kind: str | None = None
    value: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Target:
    """One message to make: who it is for and what its payload's ``to`` is."""

    recipient: Recipient
    raw_to: dict[str, Any]
    list_id: str | None = None
    list_preferences: dict[str, Any] | None = None


class TooManyRecipients(BadRequest):
    """The send expands beyond ``TIDINGS_MAX_SEND_RECIPIENTS``."""


def parse_to(value: Any, path: str = "message.to") -> list[Entry]:
    """Check ``message.to`` (an object or a non-empty list) into entries; raises
    :class:`~tidings.domain.errors.ValidationError` naming the first wrong field."""
    if isinstance(value, Mapping):
        return [_entry(value, path)]
    if isinstance(value, list):
        if not value:
            raise RecipientError(path, "must name at least one recipient")
        return [_entry(item, f"{path}[{i}]") for i, item in enumerate(value)]
    raise RecipientError(path, "must be a recipient object or a list of them")


def _entry(value: Any, path: str) -> Entry:
    if not isinstance(value, Mapping):
        raise RecipientError(path, "must be an object")
    kinds = [key for key in GROUPS if value.get(key) is not None]
    if not kinds:
        return Entry(raw=dict(value), path=path, recipient=parse_recipient(value, path))
    if len(kinds) > 1:
        raise RecipientError(path, f"give one of {', '.join(kinds)}, not several")
    kind = kinds[0]
    for key in value:
        if key != kind and key not in _GROUP_FIELDS and value[key] is not None:
            raise RecipientError(
                key_path(path, key),
                f"is not a field of a {kind} recipient (it takes {kind} and data; to send "
                "to someone besides the group, give them their own entry in message.to)",
            )
    checked = GROUPS[kind].check(value[kind], key_path(path, kind))
    data = value.get("data")
    if data is not None and not isinstance(data, Mapping):
        raise RecipientError(key_path(path, "data"), "must be an object")
    return Entry(raw=dict(value), path=path, kind=kind, value=checked, data=dict(data or {}))


def is_grouped(entries: list[Entry]) -> bool:
    """Whether the send names a group (its answer is then a request id whatever the count)."""
    return any(e.kind is not None for e in entries)


async def expand_recipients(conn: Conn, entries: list[Entry], *, limit: int) -> list[Target]:
    """One target per message, in ``to`` order: each recipient entry as given, each group
    entry as its members not reached before (see the module's note on dedupe). Raises
    :class:`TooManyRecipients` when there would be more than ``limit``."""
    reached = {e.recipient.user_id for e in entries if e.recipient and e.recipient.user_id}
    targets: list[Target] = []

    def room() -> int:
        return limit - len(targets)

    for entry in entries:
        if entry.recipient is not None:
            targets.append(Target(recipient=entry.recipient, raw_to=entry.raw))
        else:
            assert entry.kind is not None and entry.value is not None
            # One more new user than there is room for tells that the limit is passed; at
            # most len(reached) of those read can be users reached already.
            want = room() + 1 + len(reached)
            try:
                members = await GROUPS[entry.kind].members(conn, entry.value, want)
            except UnknownGroup as exc:
                raise BadRequest(f"{key_path(entry.path, entry.kind)}: {exc}") from None
            except GroupTooLarge:
                raise too_many(limit) from None
            for member in members:
                if member.user_id in reached:
                    continue
                reached.add(member.user_id)
                raw_to: dict[str, Any] = {"user_id": member.user_id}
                if entry.data:
                    raw_to["data"] = dict(entry.data)
                targets.append(
                    Target(
                        recipient=Recipient(user_id=member.user_id, data=dict(entry.data)),
                        raw_to=raw_to,
                        list_id=member.list_id,
                        list_preferences=member.preferences,
                    )
                )
                if room() < 0:
                    break
        if room() < 0:
            raise too_many(limit)
    return targets


def too_many(limit: int) -> TooManyRecipients:
    """The refusal of a send that would make more than ``limit`` messages."""
    return TooManyRecipients(
        f"message.to: this send reaches more than {limit} recipients, the most one send may "
        "have (TIDINGS_MAX_SEND_RECIPIENTS); split it, or raise the setting"
    )


__all__ = [
    "GROUPS",
    "Entry",
    "Group",
    "GroupMember",
    "GroupTooLarge",
    "Target",
    "TooManyRecipients",
    "UnknownGroup",
    "expand_recipients",
    "is_grouped",
    "parse_to",
    "too_many",
]
