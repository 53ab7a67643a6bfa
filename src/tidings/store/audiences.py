"""Stored audiences (Courier's Audiences API) and their members, found by evaluating the
audience's filter over the stored profiles.

An audience is kept as its checked filter in Courier's shape; membership is not stored but
worked out when asked for, so it follows the profiles as they change (Courier: "membership
recalculates automatically"). The evaluation is :func:`tidings.domain.audiences.matches`,
the same on SQLite and PostgreSQL; profiles are read in pages by user id (keyset, on the
primary key) so that however many there are, one page of them is in memory at a time.

:func:`members` is what a send to ``to.audience_id`` expands: every member (up to a limit
the caller sets), each to become a ``user_id`` recipient. :func:`members_page` is what
``list_members`` pages through.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tidings.domain.audiences import Group, Rule, matches, parse_filter, to_wire
from tidings.store.clock import utcnow
from tidings.store.database import Conn
from tidings.store.tables import audiences, profiles

SCAN_BATCH = 500  # profiles read per query while evaluating a filter


@dataclass(frozen=True, slots=True)
class StoredAudience:
    id: str
    name: str
    description: str
    filter: dict[str, Any]  # Courier's shape: {"filters": [...], "operator": ...}
    version: int
    created: datetime
    updated: datetime

    @property
    def operator(self) -> str | None:
        """The top-level filter's AND/OR (Courier's ``operator`` alias of it)."""
        value = self.filter.get("operator")
        return str(value) if value is not None else None

    def rule(self) -> Group:
        """The filter, parsed (it was checked when stored)."""
        return parse_filter(self.filter)


@dataclass(frozen=True, slots=True)
class Member:
    """A user the audience's filter matches, with the stored profile it matched."""

    user_id: str
    profile: dict[str, Any]
    updated: datetime  # when the profile was last written


@dataclass(frozen=True, slots=True)
class Page:
    results: list[StoredAudience]
    cursor: str | None  # for the next page; None when this is the last


@dataclass(frozen=True, slots=True)
class MembersPage:
    audience: StoredAudience
    members: list[Member]
    cursor: str | None  # for the next page; None when this is the last


class UnknownAudience(LookupError):
    """No audience has that id (never created, or deleted)."""

    def __init__(self, audience_id: str) -> None:
        super().__init__(f"No audience '{audience_id}'")
        self.audience_id = audience_id
        self.message = str(self)


class TooManyMembers(Exception):
    """The audience has more members than the caller allows in one go."""

    def __init__(self, audience_id: str, limit: int) -> None:
        super().__init__(
            f"Audience '{audience_id}' has more than {limit} members, the most one send expands"
        )
        self.audience_id = audience_id
        self.limit = limit
        self.message = str(self)


def _row(row: sa.Row[Any]) -> StoredAudience:
    return StoredAudience(
        id=row.id,
        name=row.name,
        description=row.description,
        filter=dict(row.filter),
        version=row.version,
        created=row.created,
        updated=row.updated,
    )


async def get(conn: Conn, audience_id: str) -> StoredAudience | None:
    row = (await conn.execute(sa.select(audiences).where(audiences.c.id == audience_id))).first()
    return _row(row) if row is not None else None


async def update(
    conn: Conn, audience_id: str, *, name: str, description: str, rule: Group
) -> StoredAudience:
    """Create the audience, or replace it whole (its version counts the writes). Two
    requests creating the same id at once: one insert loses with ``IntegrityError``, and
    the caller may retry it as a replacement."""
    now = utcnow()
    wire = to_wire(rule)
    result = await conn.execute(
        audiences.update()
        .where(audiences.c.id == audience_id)
        .values(
            name=name,
            description=description,
            filter=wire,
            version=audiences.c.version + 1,
            updated=now,
        )
    )
    if not result.rowcount:
        await conn.execute(
            audiences.insert().values(
                id=audience_id,
                name=name,
                description=description,
                filter=wire,
                version=1,
                created=now,
                updated=now,
            )
        )
    stored = await get(conn, audience_id)
    assert stored is not None  # written just now, in this transaction
    return stored


async def delete(conn: Conn, audience_id: str) -> bool:
    result = await conn.execute(audiences.delete().where(audiences.c.id == audience_id))
    return bool(result.rowcount)


def _encode(position: list[str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def _decode(cursor: str, size: int) -> list[str]:
    """The position a cursor names; ``ValueError`` if it is not one this module wrote."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = json.loads(raw)
    except (ValueError, TypeError) as exc:
        raise ValueError("cursor is not one this API returned") from exc
    if (
        not isinstance(position, list)
        or len(position) != size
        or not all(isinstance(p, str) for p in position)
    ):
        raise ValueError("cursor is not one this API returned")
    return position


async def list_page(conn: Conn, *, limit: int, cursor: str | None) -> Page:
    """Audiences, oldest first (a stable order for paging), ``limit`` at a time."""
    query = sa.select(audiences)
    if cursor is not None:
        created_text, audience_id = _decode(cursor, 2)
        try:
            created = datetime.fromisoformat(created_text)
        except ValueError as exc:
            raise ValueError("cursor is not one this API returned") from exc
        query = query.where(
            sa.or_(
                audiences.c.created > created,
                sa.and_(audiences.c.created == created, audiences.c.id > audience_id),
            )
        )
    rows = (
        await conn.execute(query.order_by(audiences.c.created, audiences.c.id).limit(limit + 1))
    ).all()
    results = [_row(r) for r in rows[:limit]]
    last = results[-1] if results and len(rows) > limit else None
    return Page(results, _encode([last.created.isoformat(), last.id]) if last else None)


async def _scan(conn: Conn, rule: Rule, *, after: str | None) -> AsyncGenerator[Member, None]:
    """The profiles the rule matches, by user id, after ``after``: read ``SCAN_BATCH`` at a
    time, so a page of profiles is what is held while evaluating."""
    while True:
        query = (
            sa.select(profiles.c.user_id, profiles.c.profile, profiles.c.updated)
            .order_by(profiles.c.user_id)
            .limit(SCAN_BATCH)
        )
        if after is not None:
            query = query.where(profiles.c.user_id > after)
        rows = (await conn.execute(query)).all()
        for row in rows:
            profile = row.profile if isinstance(row.profile, dict) else {}
            if matches(rule, profile):
                yield Member(row.user_id, profile, row.updated)
        if len(rows) < SCAN_BATCH:
            return
        after = rows[-1].user_id


async def members(conn: Conn, audience_id: str, *, limit: int) -> list[Member]:
    """Every member of the audience, in user id order: what a send to ``to.audience_id``
    expands to (each member a ``user_id`` recipient). :class:`UnknownAudience` if there is
    no such audience, :class:`TooManyMembers` if it has more than ``limit`` members."""
    audience = await get(conn, audience_id)
    if audience is None:
        raise UnknownAudience(audience_id)
    found: list[Member] = []
    async with aclosing(_scan(conn, audience.rule(), after=None)) as scan:
        async for member in scan:
            if len(found) == limit:
                raise TooManyMembers(audience_id, limit)
            found.append(member)
    return found


async def members_page(
    conn: Conn, audience_id: str, *, limit: int, cursor: str | None
) -> MembersPage:
    """One page of the audience's members, in user id order (``list_members``).
    :class:`UnknownAudience` if there is no such audience, ``ValueError`` for a cursor this
    module did not write."""
    after = _decode(cursor, 1)[0] if cursor is not None else None
    audience = await get(conn, audience_id)
    if audience is None:
        raise UnknownAudience(audience_id)
    found: list[Member] = []
    more = False
    async with aclosing(_scan(conn, audience.rule(), after=after)) as scan:
        async for member in scan:
            if len(found) == limit:
                more = True
                break
            found.append(member)
    return MembersPage(audience, found, _encode([found[-1].user_id]) if more else None)
