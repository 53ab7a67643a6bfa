"""Stored notification templates (Courier's notifications API): drafts, versions, aliases.

A template row holds its *draft*, the mutable document (name, tags, brand, routing,
subscription, content, email) checked by :mod:`tidings.domain.templates`. Publishing
copies a document into ``template_versions`` under the next name (``v001``, ``v002``, …)
and points ``published_version`` at it; a version row is never updated. Sends use the
published version (:func:`find_sendable`), previews any version or the draft
(:func:`find_version`).

Aliases (``/send``'s ``event``) are rows of their own whose primary key is the alias, so
two requests racing for one alias cannot both win; archiving a template frees them.
Archived templates stay readable (their history) but are neither listed nor sendable.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tidings.domain.templates import DRAFT, PUBLISHED, State, version_name
from tidings.ids import new_id
from tidings.store.clock import utcnow
from tidings.store.database import Conn
from tidings.store.tables import (
    messages,
    providers,
    template_aliases,
    template_versions,
    templates,
)

ID_PREFIX = "nt_"


@dataclass(frozen=True, slots=True)
class SendableTemplate:
    id: str
    version: str  # the published version used, e.g. "v002" ("draft" from find_version(None))
    name: str
    alias: str | None
    content: dict[str, Any]  # the version's Elemental content (element `locales` included)
    brand_id: str | None
    routing_strategy_id: str | None
    subscription_topic_id: str | None
    tags: list[str]
    email: dict[str, Any] | None  # {"from"?: str, "reply_to"?: str, "cc"?: [str], "bcc"?: [str]}


class TemplateUnavailable(LookupError):
    """str(exc) says why: no template with that id or alias / archived / never published."""


class AliasTaken(Exception):
    """The alias belongs to another template."""

    def __init__(self, alias: str, template_id: str) -> None:
        super().__init__(f"alias {alias!r} is already used by template {template_id}")
        self.alias = alias
        self.template_id = template_id


@dataclass(frozen=True, slots=True)
class StoredTemplate:
    id: str
    draft: dict[str, Any]
    created: datetime
    creator: str
    updated: datetime
    updater: str
    published_version: str | None
    version_count: int
    archived_at: datetime | None
    aliases: list[str]
    published: dict[str, Any] | None  # the published version's document

    @property
    def has_changes(self) -> bool:
        """Whether the draft differs from what is published (or nothing is)."""
        return self.published is None or self.published != self.draft

    @property
    def state(self) -> State:
        """PUBLISHED while the draft is what is published; DRAFT before the first publish
        and after any edit of the draft until the next one."""
        return DRAFT if self.has_changes else PUBLISHED


@dataclass(frozen=True, slots=True)
class StoredVersion:
    template_id: str
    version: str
    document: dict[str, Any]
    created: datetime
    creator: str


@dataclass(frozen=True, slots=True)
class Page:
    results: list[StoredTemplate]
    cursor: str | None  # for the next page; None when this is the last


def _sendable(
    template_id: str, version: str, document: dict[str, Any], aliases: list[str]
) -> SendableTemplate:
    brand, routing, subscription = (
        document.get("brand"),
        document.get("routing"),
        document.get("subscription"),
    )
    return SendableTemplate(
        id=template_id,
        version=version,
        name=str(document["name"]),
        alias=aliases[0] if aliases else None,
        content=document["content"],
        brand_id=brand["id"] if brand else None,
        routing_strategy_id=routing["strategy_id"] if routing else None,
        subscription_topic_id=subscription["topic_id"] if subscription else None,
        tags=list(document.get("tags") or []),
        email=document.get("email"),
    )


async def _aliases_of(conn: Conn, ids: list[str]) -> dict[str, list[str]]:
    if not ids:
        return {}
    rows = (
        await conn.execute(
            sa.select(template_aliases.c.template_id, template_aliases.c.alias)
            .where(template_aliases.c.template_id.in_(ids))
            .order_by(template_aliases.c.alias)
        )
    ).all()
    found: dict[str, list[str]] = {}
    for row in rows:
        found.setdefault(row.template_id, []).append(row.alias)
    return found


async def _published_of(conn: Conn, rows: list[sa.Row[Any]]) -> dict[str, dict[str, Any]]:
    pairs = [(r.id, r.published_version) for r in rows if r.published_version]
    if not pairs:
        return {}
    found = (
        await conn.execute(
            sa.select(template_versions.c.template_id, template_versions.c.document).where(
                sa.tuple_(template_versions.c.template_id, template_versions.c.version).in_(pairs)
            )
        )
    ).all()
    return {r.template_id: dict(r.document) for r in found}


async def _stored(conn: Conn, rows: list[sa.Row[Any]]) -> list[StoredTemplate]:
    aliases = await _aliases_of(conn, [r.id for r in rows])
    published = await _published_of(conn, rows)
    return [
        StoredTemplate(
            id=r.id,
            draft=dict(r.draft),
            created=r.created,
            creator=r.creator,
            updated=r.updated,
            updater=r.updater,
            published_version=r.published_version,
            version_count=r.version_count,
            archived_at=r.archived_at,
            aliases=aliases.get(r.id, []),
            published=published.get(r.id),
        )
        for r in rows
    ]


async def create(conn: Conn, *, document: dict[str, Any], creator: str) -> str:
    """A new template whose draft is ``document``; returns its id."""
    now = utcnow()
    template_id = new_id(ID_PREFIX)
    await conn.execute(
        templates.insert().values(
            id=template_id,
            draft=document,
            created=now,
            creator=creator,
            updated=now,
            updater=creator,
            published_version=None,
            version_count=0,
            archived_at=None,
        )
    )
    return template_id


async def get(conn: Conn, template_id: str, *, lock: bool = False) -> StoredTemplate | None:
    """A template, archived or not. ``lock``: hold its row until the transaction ends
    (PostgreSQL), so that two publishes cannot pick the same version name."""
    query = sa.select(templates).where(templates.c.id == template_id)
    if lock:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    return (await _stored(conn, [row]))[0]


async def update_draft(
    conn: Conn, template_id: str, document: dict[str, Any], *, updater: str
) -> None:
    await conn.execute(
        templates.update()
        .where(templates.c.id == template_id)
        .values(draft=document, updated=utcnow(), updater=updater)
    )


async def alias_owner(conn: Conn, alias: str) -> str | None:
    value = await conn.scalar(
        sa.select(template_aliases.c.template_id).where(template_aliases.c.alias == alias)
    )
    return str(value) if value is not None else None


async def set_alias(conn: Conn, template_id: str, alias: str | None) -> None:
    """Make ``alias`` the template's only alias (None: remove them all). Raises
    :class:`AliasTaken` if another template holds it; a concurrent claim that commits
    first makes the insert fail on the primary key (``IntegrityError``) instead."""
    if alias is not None:
        owner = await alias_owner(conn, alias)
        if owner is not None and owner != template_id:
            raise AliasTaken(alias, owner)
    await conn.execute(
        template_aliases.delete().where(
            template_aliases.c.template_id == template_id,
            *([template_aliases.c.alias != alias] if alias is not None else []),
        )
    )
    if alias is None:
        return
    # Asked again: on PostgreSQL another transaction may have committed the alias since.
    owner = await alias_owner(conn, alias)
    if owner is None:
        await conn.execute(
            template_aliases.insert().values(alias=alias, template_id=template_id, created=utcnow())
        )
    elif owner != template_id:
        raise AliasTaken(alias, owner)


async def publish(conn: Conn, template_id: str, *, document: dict[str, Any], creator: str) -> str:
    """Snapshot ``document`` as the next version and make it the published one; returns
    its name. Call with the template's row locked (``get(..., lock=True)``)."""
    count = await conn.scalar(
        sa.select(templates.c.version_count).where(templates.c.id == template_id)
    )
    name = version_name(int(count or 0) + 1)
    await conn.execute(
        template_versions.insert().values(
            template_id=template_id,
            version=name,
            document=document,
            created=utcnow(),
            creator=creator,
        )
    )
    await conn.execute(
        templates.update()
        .where(templates.c.id == template_id)
        .values(published_version=name, version_count=int(count or 0) + 1)
    )
    return name


async def get_version(conn: Conn, template_id: str, version: str) -> StoredVersion | None:
    row = (
        await conn.execute(
            sa.select(template_versions).where(
                template_versions.c.template_id == template_id,
                template_versions.c.version == version,
            )
        )
    ).first()
    if row is None:
        return None
    return StoredVersion(row.template_id, row.version, dict(row.document), row.created, row.creator)


async def versions(conn: Conn, template_id: str) -> list[StoredVersion]:
    """Every published version, newest first."""
    rows = (
        await conn.execute(
            sa.select(template_versions)
            .where(template_versions.c.template_id == template_id)
            .order_by(template_versions.c.created.desc(), template_versions.c.version.desc())
        )
    ).all()
    return [
        StoredVersion(r.template_id, r.version, dict(r.document), r.created, r.creator)
        for r in rows
    ]


async def archive(conn: Conn, template_id: str) -> bool:
    """Archive a live template and free its aliases; False if none is live."""
    result = await conn.execute(
        templates.update()
        .where(templates.c.id == template_id, templates.c.archived_at.is_(None))
        .values(archived_at=utcnow())
    )
    if not result.rowcount:
        return False
    await conn.execute(
        template_aliases.delete().where(template_aliases.c.template_id == template_id)
    )
    return True


def encode_cursor(created: datetime, template_id: str) -> str:
    raw = json.dumps([created.isoformat(), template_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor names; ``ValueError`` if it is not one this module wrote."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, template_id = json.loads(raw)
        return datetime.fromisoformat(created), str(template_id)
    except (ValueError, TypeError) as exc:
        raise ValueError("cursor is not one this API returned") from exc


async def list_page(
    conn: Conn,
    *,
    limit: int,
    cursor: str | None,
    tags: list[str] | None = None,
    alias: str | None = None,
    strategy_id: str | None = None,
) -> Page:
    """Live templates, oldest first, ``limit`` at a time; ``tags``: only those carrying
    all of them (case-insensitive, before paging); ``alias``: the one it names;
    ``strategy_id``: those whose draft routes by that routing strategy."""
    query = sa.select(templates).where(templates.c.archived_at.is_(None))
    if alias is not None:
        query = query.where(
            templates.c.id.in_(
                sa.select(template_aliases.c.template_id).where(template_aliases.c.alias == alias)
            )
        )
    if cursor is not None:
        created, template_id = decode_cursor(cursor)
        query = query.where(
            sa.or_(
                templates.c.created > created,
                sa.and_(templates.c.created == created, templates.c.id > template_id),
            )
        )
    query = query.order_by(templates.c.created, templates.c.id)
    wanted = {t.lower() for t in tags or []}
    # Tags and routing live inside the draft document: read in batches and filter here, so
    # that the filter comes before paging as Courier's does.
    matched: list[sa.Row[Any]] = []
    offset, batch = 0, max(limit + 1, 100)
    while len(matched) <= limit:
        rows = (await conn.execute(query.limit(batch).offset(offset))).all()
        for row in rows:
            draft = row.draft or {}
            have = {str(t).lower() for t in draft.get("tags") or []}
            routing = draft.get("routing") or {}
            if wanted <= have and strategy_id in (None, routing.get("strategy_id")):
                matched.append(row)
        if len(rows) < batch:
            break
        offset += batch
    page = matched[:limit]
    results = await _stored(conn, page)
    last = results[-1] if results else None
    more = len(matched) > limit
    return Page(results, encode_cursor(last.created, last.id) if more and last else None)


async def _resolve(conn: Conn, ref: str) -> StoredTemplate | None:
    found = await get(conn, ref)
    if found is None:
        owner = await alias_owner(conn, ref)
        found = await get(conn, owner) if owner is not None else None
    return found


async def find_sendable(conn: Conn, ref: str) -> SendableTemplate:
    """The published version of the template whose id, else alias, is ``ref``."""
    found = await _resolve(conn, ref)
    if found is None:
        raise TemplateUnavailable(f"there is no template with id or alias {ref!r}")
    if found.archived_at is not None:
        raise TemplateUnavailable(f"template {found.id} is archived")
    if found.published_version is None or found.published is None:
        raise TemplateUnavailable(
            f"template {found.id} has never been published (POST /notifications/{found.id}/publish)"
        )
    return _sendable(found.id, found.published_version, found.published, found.aliases)


async def find_version(conn: Conn, template_id: str, version: str | None) -> SendableTemplate:
    """A version of a template by id (archived ones included, for their history): None or
    "draft" = the current draft (its ``version`` reads "draft"), "published" = the
    published one, or a name like "v001"."""
    found = await get(conn, template_id)
    if found is None:
        raise TemplateUnavailable(f"there is no template with id {template_id!r}")
    if version is None or version == "draft":
        return _sendable(found.id, "draft", found.draft, found.aliases)
    if version == "published":
        if found.published_version is None or found.published is None:
            raise TemplateUnavailable(f"template {found.id} has never been published")
        return _sendable(found.id, found.published_version, found.published, found.aliases)
    stored = await get_version(conn, found.id, version)
    if stored is None:
        raise TemplateUnavailable(f"template {found.id} has no version {version!r}")
    return _sendable(found.id, stored.version, stored.document, found.aliases)


@dataclass(frozen=True, slots=True)
class ProviderCounts:
    """One provider's funnel for a template over a period (get_metrics)."""

    provider: str
    sent: int
    delivered: int
    opened: int
    clicked: int
    errors: int
    undeliverable: int


async def count_messages(
    conn: Conn, template_id: str, start: datetime, end: datetime
) -> list[ProviderCounts]:
    """Messages sent by ``template_id`` and enqueued in [start, end), counted per provider
    (its key, e.g. "mailgun"; "none" for messages that never reached one) by the status
    facts: sent/delivered/opened/clicked are set once reached (a later status implies the
    earlier ones), UNDELIVERABLE is the final failure, errors are messages that failed at
    some provider (an error recorded, or undeliverable)."""
    undeliverable = sa.func.sum(sa.case((messages.c.status == "UNDELIVERABLE", 1), else_=0))
    errors = sa.func.sum(
        sa.case(
            (sa.or_(messages.c.status == "UNDELIVERABLE", messages.c.error.is_not(None)), 1),
            else_=0,
        )
    )
    provider = sa.func.coalesce(providers.c.provider, "none")
    rows = (
        await conn.execute(
            sa.select(
                provider.label("provider"),
                sa.func.count(messages.c.sent).label("sent"),
                sa.func.count(messages.c.delivered).label("delivered"),
                sa.func.count(messages.c.opened).label("opened"),
                sa.func.count(messages.c.clicked).label("clicked"),
                errors.label("errors"),
                undeliverable.label("undeliverable"),
            )
            .select_from(messages.outerjoin(providers, providers.c.id == messages.c.provider_id))
            .where(
                messages.c.template_id == template_id,
                messages.c.enqueued >= start,
                messages.c.enqueued < end,
            )
            .group_by(provider)
            .order_by(provider)
        )
    ).all()
    return [
        ProviderCounts(
            provider=str(r.provider),
            sent=int(r.sent or 0),
            delivered=int(r.delivered or 0),
            opened=int(r.opened or 0),
            clicked=int(r.clicked or 0),
            errors=int(r.errors or 0),
            undeliverable=int(r.undeliverable or 0),
        )
        for r in rows
    ]


async def has_messages(conn: Conn, template_id: str, start: datetime, end: datetime) -> bool:
    """Whether any message of the template was enqueued in [start, end): empty buckets
    need no query of their own."""
    found = await conn.scalar(
        sa.select(messages.c.id)
        .where(
            messages.c.template_id == template_id,
            messages.c.enqueued >= start,
            messages.c.enqueued < end,
        )
        .limit(1)
    )
    return found is not None
