"""The accept path of a send: check a Courier message and turn its recipients into messages.

``POST /send`` and bulk jobs (``tidings.api.bulk``) both go through here, so that a
recipient of a bulk job is checked, resolved (template, brand, routing strategy) and stored
exactly as one sent by ``/send``: :func:`check` does everything that is the same for every
recipient of a message, once; :func:`build` makes the rows of its recipients. Neither
commits: the caller owns the transaction (and, for ``/send``, the idempotency key).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from tidings.api.errors import describe_validation
from tidings.api.expansion import Entry, Target, parse_to
from tidings.api.preferences import topic_of_send
from tidings.api.schemas import (
    EmailOverride,
    MailgunOverride,
    MessageIn,
    check_channels,
    check_providers,
    check_routing,
    duration_ms,
    parse_when,
)
from tidings.api.unhonoured import refuse_unhonoured
from tidings.domain.content import parse_content
from tidings.domain.errors import ValidationError
from tidings.domain.routing import COURIER_CHANNELS
from tidings.domain.status import HistoryType, with_enqueued
from tidings.errors import BadRequest
from tidings.providers import registry
from tidings.providers.mailgun.settings import MailgunSettings
from tidings.providers.settings import merge_override
from tidings.render.email import check_content
from tidings.runtime import Runtime
from tidings.store import facts as facts_codec
from tidings.store import messages as store
from tidings.store import providers as providers_store
from tidings.store import routing_strategies
from tidings.store import templates as templates_store
from tidings.store.database import Conn
from tidings.store.lazy_read import LazyRead
from tidings.store.template_payload import (
    UnknownBrand,
    brand_with_default,
    template_reference,
)


def known_provider_keys() -> frozenset[str]:
    """The provider keys routing may name (``/send`` and routing strategies check them)."""
    return frozenset(registry.keys())


def _check_routing(message: dict[str, Any]) -> None:
    """``message.routing``, ``message.channels`` and ``message.providers`` as Courier writes
    them, checked whole against the providers Tidings has (``message`` is the raw body, with
    the fields the schema does not model)."""
    known = known_provider_keys()
    try:
        if message.get("routing") is not None:
            check_routing(message["routing"], "message.routing", known, COURIER_CHANNELS)
        if message.get("channels") is not None:
            check_channels(message["channels"], "message.channels", known, COURIER_CHANNELS)
        if message.get("providers") is not None:
            check_providers(message["providers"], "message.providers", known)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    timeout = message.get("timeout") or {}
    named = [("message.timeout.providers", timeout.get("providers"))]
    if isinstance(timeout.get("provider"), dict):
        named.append(("message.timeout.provider", timeout["provider"]))
    for path, given in named:
        for key in given or {}:
            if key not in known:
                raise BadRequest(
                    f"{path}: '{key}' is not a provider Tidings has; "
                    f"known: {', '.join(sorted(known))}"
                )


def _wants_default_strategy(msg: MessageIn) -> bool:
    """A send that gives no routing and no email provider order of its own is routed by
    the workspace default strategy (a Tidings extension)."""
    email = (msg.channels or {}).get("email")
    return msg.routing is None and not (email and email.providers)


def _when(value: str, path: str) -> datetime:
    try:
        return parse_when(value, path)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def _not_before(msg: MessageIn, now: datetime) -> datetime:
    at = now
    if msg.delay and msg.delay.duration:
        at = now + timedelta(milliseconds=msg.delay.duration)
    if msg.delay and msg.delay.until:
        at = max(at, _when(msg.delay.until, "message.delay.until"))
    return at


def _expires_at(msg: MessageIn, now: datetime, default_timeout_ms: int) -> datetime:
    """The moment after which Tidings stops trying: the earliest of ``expiry`` and
    ``timeout.message`` (Courier's default 72 hours). Durations are bounded by the schema,
    so the sums stay on the calendar."""
    timeout_ms = msg.timeout.message if msg.timeout and msg.timeout.message else default_timeout_ms
    limits = [now + timedelta(milliseconds=timeout_ms)]
    if msg.expiry and msg.expiry.expires_at:
        limits.append(_when(msg.expiry.expires_at, "message.expiry.expires_at"))
    if msg.expiry and msg.expiry.expires_in is not None:
        # Checked by the schema: at most ten years.
        limits.append(now + timedelta(milliseconds=duration_ms(msg.expiry.expires_in)))
    return min(limits)


def _check_attachments(msg: MessageIn) -> None:
    """Validate every attachment now: a bad one is the sender's error, not a failed send."""
    providers = msg.providers or {}
    spec = providers.get("mailgun")
    if spec and spec.override:
        try:
            MailgunOverride.model_validate(spec.override)
        except PydanticValidationError as exc:
            raise BadRequest(
                _prefixed(exc, ("message", "providers", "mailgun", "override"))
            ) from None
    channels = msg.channels or {}
    email = channels.get("email")
    if email and email.override:
        try:
            EmailOverride.model_validate(email.override)
        except PydanticValidationError as exc:
            raise BadRequest(_prefixed(exc, ("message", "channels", "email", "override"))) from None


async def _check_override_config(msg: MessageIn, rt: Runtime, reads: Conn) -> None:
    """Keys stay with their hosts: an override that would send the stored key elsewhere is
    refused now, against the configuration that would send it (the default). The
    dispatcher checks again against the configuration it uses, should that change."""
    spec = (msg.providers or {}).get("mailgun")
    config = (spec.override or {}).get("config") if spec and spec.override else None
    if not isinstance(config, dict) or not config:
        return
    stored = await providers_store.default(reads, "mailgun")
    try:
        merge_override(
            MailgunSettings,
            stored.settings if stored is not None else None,
            config,
            trusted=rt.network_policy().trusted,
            path="message.providers.mailgun.override.config",
        )
    except ValidationError as exc:
        raise BadRequest(str(exc)) from None
    except PydanticValidationError:
        return  # the stored configuration itself is broken: the dispatcher says so


def _prefixed(exc: PydanticValidationError, prefix: tuple[str, ...]) -> str:
    return describe_validation([{**e, "loc": (*prefix, *e["loc"])} for e in exc.errors()])


def _routing_fields(msg: MessageIn, strategy: dict[str, Any] | None) -> dict[str, Any]:
    """What the dispatcher routes by, under generic keys (the same for every recipient):
    ``routing`` (as given), ``channels`` ({channel: {providers, routing_method}}),
    ``strategy`` (the default strategy's documents when it applies, else null),
    ``provider_overrides`` ({key: override}) and ``provider_timeouts_ms`` ({key: ms}, "*"
    for every provider). Message-level settings win over the strategy's."""
    strategy_providers: dict[str, Any] = (strategy or {}).get("providers") or {}
    strategy_email = ((strategy or {}).get("channels") or {}).get("email") or {}
    overrides: dict[str, Any] = {
        key: spec["override"] for key, spec in strategy_providers.items() if spec.get("override")
    }
    timeouts: dict[str, int] = {
        key: spec["timeouts"]
        for key, spec in strategy_providers.items()
        if spec.get("timeouts") is not None
    }
    default_ms = (strategy_email.get("timeouts") or {}).get("provider")
    for key, provider in (msg.providers or {}).items():
        if provider.override:
            overrides[key] = provider.override
        extra = provider.model_extra or {}
        if extra.get("timeouts") is not None:
            timeouts[key] = int(extra["timeouts"])
    email = (msg.channels or {}).get("email")
    email_timeouts = ((email.model_extra or {}).get("timeouts") or {}) if email else {}
    if email_timeouts.get("provider") is not None:
        default_ms = email_timeouts["provider"]
    timeout = msg.timeout
    if timeout is not None:
        if isinstance(timeout.provider, int):
            default_ms = timeout.provider
        elif isinstance(timeout.provider, dict):
            timeouts.update(timeout.provider)
        timeouts.update(timeout.providers or {})
    if default_ms is not None:
        timeouts["*"] = int(default_ms)
    return {
        "routing": msg.routing,
        "channels": {
            name: {"providers": spec.providers, "routing_method": spec.routing_method}
            for name, spec in (msg.channels or {}).items()
        },
        "strategy": strategy,
        "provider_overrides": overrides,
        "provider_timeouts_ms": timeouts,
    }


def _utm(msg: MessageIn) -> dict[str, str]:
    """``metadata.utm``, with ``channels.email.metadata.utm`` winning field by field."""
    utm: dict[str, str] = {}
    if msg.metadata and msg.metadata.utm:
        utm.update(msg.metadata.utm.model_dump(exclude_none=True))
    email = (msg.channels or {}).get("email")
    channel_metadata = (email.model_extra or {}).get("metadata") if email else None
    if isinstance(channel_metadata, dict) and isinstance(channel_metadata.get("utm"), dict):
        utm.update({k: v for k, v in channel_metadata["utm"].items() if isinstance(v, str) and v})
    return utm


def _payload(
    msg: MessageIn,
    target: Target,
    routing: dict[str, Any],
    stored: StoredParts,
) -> dict[str, Any]:
    recipient, raw_to = target.recipient, target.raw_to
    data = dict(msg.data or {})
    data.update(recipient.data or {})
    providers = msg.providers or {}
    channels = msg.channels or {}
    mailgun = providers.get("mailgun")
    email = channels.get("email")
    template = stored.template
    return {
        "to": raw_to,
        "content": template.content if template is not None else msg.content,
        "template": template_reference(template) if template is not None else None,
        "template_email": template.email if template is not None else None,
        "brand": stored.brand,
        "brand_default": stored.brand_default,
        "utm": _utm(msg),
        "data": data,
        # Read by today's dispatcher; provider_overrides carries every provider's.
        "mailgun_override": (mailgun.override if mailgun else None) or {},
        "email_override": (email.override if email else None) or {},
        "metadata": msg.metadata.model_dump(exclude_none=True) if msg.metadata else {},
        "brand_id": msg.brand_id,
        # Sent through a list: which, and the subscription's preferences (Courier's
        # RecipientPreferences, as stored) for the preference check at send time.
        **(
            {"list_id": target.list_id, "list_preferences": target.list_preferences}
            if target.list_id is not None
            else {}
        ),
        **routing,
    }


def template_ref(msg: MessageIn) -> tuple[str, str] | None:
    """``(path, id or alias)`` of the stored template this send names, if any."""
    if msg.template is not None and msg.event is not None and msg.template != msg.event:
        raise BadRequest("message.event: give template or event (an alias), not both")
    if msg.template is not None:
        return "message.template", msg.template
    if msg.event is not None:
        return "message.event", msg.event
    return None


def validate_message(msg: MessageIn) -> list[Entry]:
    if msg.content is None and template_ref(msg) is None:
        raise BadRequest("message.content or message.template is required")
    if msg.content is not None and template_ref(msg) is not None:
        raise BadRequest("message: give either content or template, not both")
    if msg.to is None:
        raise BadRequest("message.to is required")
    try:
        if msg.content is not None:
            check_content(parse_content(msg.content, "message.content"))
        recipients = parse_to(msg.to, "message.to")
    except ValidationError as exc:
        raise BadRequest(str(exc)) from None
    _check_attachments(msg)
    return recipients


@dataclass(frozen=True, slots=True)
class StoredParts:
    """What a send takes from the store at accept time, copied into each message so that
    a later edit (a new published version, a changed brand) does not change accepted mail."""

    template: templates_store.SendableTemplate | None
    brand: dict[str, Any] | None
    # The workspace default, for the brand's sections that inherit from it.
    brand_default: dict[str, Any] | None


async def _stored_parts(msg: MessageIn, reads: Conn) -> StoredParts:
    ref = template_ref(msg)
    template = None
    if ref is not None:
        path, name = ref
        try:
            template = await templates_store.find_sendable(reads, name)
        except templates_store.TemplateUnavailable as exc:
            raise BadRequest(f"{path}: {exc}") from None
    path, brand_id = _brand_choice(msg, template)
    try:
        # The workspace default is cached (store.brands): usually no statement at all.
        brand, default = await brand_with_default(reads, brand_id)
    except UnknownBrand as exc:
        raise BadRequest(f"{path}: {exc}") from None
    return StoredParts(template=template, brand=brand, brand_default=default)


def _brand_choice(
    msg: MessageIn, template: templates_store.SendableTemplate | None
) -> tuple[str, str | None]:
    """Which brand this send names, and where: message.brand_id, else
    channels.email.brand_id, else the template's (none: the workspace default)."""
    email = (msg.channels or {}).get("email")
    channel_brand = (email.model_extra or {}).get("brand_id") if email else None
    for path, brand_id in (
        ("message.brand_id", msg.brand_id),
        ("message.channels.email.brand_id", channel_brand),
        ("the template's brand", template.brand_id if template else None),
    ):
        if brand_id:
            return path, brand_id
    return "the default brand", None


async def _strategy(msg: MessageIn, parts: StoredParts, reads: Conn) -> dict[str, Any] | None:
    """The routing strategy a send without routing of its own is routed by, copied."""
    if not _wants_default_strategy(msg):
        return None
    # A template's routing strategy comes before the workspace default.
    strategy_id = parts.template.routing_strategy_id if parts.template else None
    if strategy_id is not None:
        default = await routing_strategies.get(reads, strategy_id)
        if default is None:
            raise BadRequest(f"the template's routing strategy {strategy_id!r} no longer exists")
    else:
        # Cached (store.routing_strategies): usually no statement at all.
        default = await routing_strategies.default(reads)
    if default is None:
        return None
    # A copy, so that editing the strategy later does not re-route accepted mail.
    return {
        "id": default.id,
        "routing": default.routing,
        "channels": default.channels,
        "providers": default.providers,
    }


@dataclass(frozen=True, slots=True)
class Accepted:
    """A checked message: what every one of its recipients' rows shares."""

    msg: MessageIn
    recipients: list[Entry]
    parts: StoredParts
    # The subscription topic the send is for ({} when none), laid over every payload.
    topic: dict[str, Any]
    routing: dict[str, Any]
    not_before: datetime
    expires_at: datetime


async def check(
    msg: MessageIn,
    raw_message: dict[str, Any],
    rt: Runtime,
    now: datetime,
    *,
    reads: Conn | None = None,
) -> Accepted:
    """Check ``msg`` (``raw_message`` is its JSON as given, with the fields the schema does
    not model) and resolve what its messages take from the store, through ``reads`` (the
    caller's read session; else one of its own, opened only if a read is needed). Raises
    :class:`BadRequest` naming the first wrong field; stores nothing."""
    if reads is None:
        async with LazyRead(rt.db) as own:
            return await check(msg, raw_message, rt, now, reads=own)
    refuse_unhonoured(raw_message)
    recipients = validate_message(msg)
    _check_routing(raw_message)
    await _check_override_config(msg, rt, reads)
    parts = await _stored_parts(msg, reads)
    topic = await topic_of_send(
        rt, raw_message, parts.template.subscription_topic_id if parts.template else None
    )
    strategy = await _strategy(msg, parts, reads)
    return Accepted(
        msg=msg,
        recipients=recipients,
        parts=parts,
        topic=topic,
        routing=_routing_fields(msg, strategy),
        not_before=_not_before(msg, now),
        expires_at=_expires_at(msg, now, rt.settings.message_timeout_ms),
    )


def build(
    accepted: Accepted,
    request_id: str,
    targets: list[tuple[str, Target]],
    now: datetime,
) -> tuple[list[store.NewMessage], list[store.HistoryEntry]]:
    """The rows of ``targets`` (message id, who it is for) and their
    first history entries, ready for :func:`tidings.store.messages.insert`."""
    msg, parts = accepted.msg, accepted.parts
    not_before, expires_at = accepted.not_before, accepted.expires_at
    metadata = msg.metadata
    facts = facts_codec.dump(with_enqueued(facts_codec.load(None), now))
    new = [
        store.NewMessage(
            id=message_id,
            request_id=request_id,
            recipient=t.recipient.user_id or t.recipient.email,
            recipient_email=t.recipient.email,
            user_id=t.recipient.user_id,
            payload={**_payload(msg, t, accepted.routing, parts), **accepted.topic},
            template_id=parts.template.id if parts.template else None,
            tenant_id=t.recipient.tenant_id,
            list_id=t.list_id,
            tags=list(metadata.tags or []) if metadata else [],
            trace_id=metadata.trace_id if metadata else None,
            event=metadata.event if metadata else None,
            next_attempt_at=not_before,
            expires_at=expires_at,
            facts=facts,
        )
        for message_id, t in targets
    ]
    first = [
        store.HistoryEntry(
            type=HistoryType.ENQUEUED.value,
            ts=now,
            data={
                "request_id": request_id,
                "recipient": m.recipient,
                **({"list": m.list_id} if m.list_id else {}),
                "not_before": not_before.isoformat() if not_before > now else None,
                "expires_at": expires_at.isoformat(),
                **(
                    {"template": parts.template.id, "template_version": parts.template.version}
                    if parts.template
                    else {}
                ),
                **({"brand": parts.brand.get("id")} if parts.brand else {}),
            },
        )
        for m in new
    ]
    return new, first


__all__ = [
    "Accepted",
    "StoredParts",
    "build",
    "check",
    "known_provider_keys",
    "template_ref",
    "validate_message",
]
