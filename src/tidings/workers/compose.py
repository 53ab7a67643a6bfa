"""From a stored message to what a provider sends: recipient, rendered email, configuration.

Pure functions over the message's payload (what ``/send`` accepted), the stored profile and
the stored provider settings; the dispatcher does the I/O around them.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from tidings.domain.recipients import parse_recipient
from tidings.providers.base import Attachment, OutgoingEmail, Provider, ProviderConfig
from tidings.providers.settings import merge_override
from tidings.render.email import RenderedEmail
from tidings.render.message import render_message


class ComposeError(Exception):
    """The message cannot be sent as given (shown in its history, never retried)."""


@dataclass(frozen=True, slots=True)
class Resolved:
    """The recipient as this send sees them: stored profile merged with inline fields."""

    email: str | None
    profile: dict[str, Any]


def resolve_recipient(payload: dict[str, Any], stored_profile: dict[str, Any] | None) -> Resolved:
    recipient = parse_recipient(payload.get("to") or {}, "message.to")
    profile = dict(stored_profile or {})
    profile.update(recipient.profile_overrides())
    email = profile.get("email")
    return Resolved(email=email if isinstance(email, str) and email else None, profile=profile)


def render(payload: dict[str, Any], resolved: Resolved) -> RenderedEmail:
    """The message's email for ``resolved`` (see :func:`tidings.render.message.render_message`)."""
    return render_message(payload, resolved.profile)


def override_of(payload: dict[str, Any], key: str) -> dict[str, Any]:
    """This message's ``providers.<key>.override`` (older payloads kept it as
    ``<key>_override``)."""
    found = (payload.get("provider_overrides") or {}).get(key)
    if found is None:
        found = payload.get(f"{key}_override")
    return dict(found or {})


def provider_config(
    provider: type[Provider],
    settings: dict[str, Any],
    payload: dict[str, Any],
    *,
    trusted: frozenset[str] = frozenset(),
) -> ProviderConfig:
    """The stored configuration with this message's ``override.config`` applied; raises a
    ValidationError (a ValueError) when the override would send a stored key elsewhere
    (see ``providers.settings.merge_override``). ``trusted``: the operator's origins."""
    config = override_of(payload, provider.key).get("config") or {}
    merged = merge_override(
        provider.settings_model,
        settings,
        config,
        trusted=trusted,
        path=f"message.providers.{provider.key}.override.config",
    )
    assert merged is not None
    return merged.to_config()


def _list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(str(v) for v in value)


def _attachments(items: list[dict[str, Any]] | None) -> list[Attachment]:
    out = []
    for item in items or []:
        out.append(
            Attachment(
                filename=item["filename"],
                content_type=item.get("contentType")
                or item.get("content_type")
                or "application/octet-stream",
                data=base64.b64decode(item["data"]),
            )
        )
    return out


def outgoing(
    message_id: str,
    payload: dict[str, Any],
    resolved: Resolved,
    rendered: RenderedEmail,
    config: ProviderConfig,
    tags: list[str],
    provider_key: str,
    extra_headers: dict[str, str] | None = None,
) -> OutgoingEmail:
    """``extra_headers``: MIME headers to add (a topic's List-Unsubscribe, workers/consent.py)."""
    if resolved.email is None:
        raise ComposeError("the recipient has no email address")
    email_override = payload.get("email_override") or {}
    provider_override = override_of(payload, provider_key)
    tracking = email_override.get("tracking") or {}
    headers = rendered.headers or {}
    from_address = email_override.get("from") or headers.get("from") or config.from_address
    if not from_address and config.domain:
        from_address = f"Tidings <no-reply@{config.domain}>"
    if not from_address:
        raise ComposeError(
            "no From address: set from_address on the provider configuration, or "
            "message.channels.email.override.from"
        )
    return OutgoingEmail(
        tidings_id=message_id,
        from_address=from_address,
        to=resolved.email,
        subject=rendered.subject,
        html=rendered.html or None,
        text=rendered.text or None,
        cc=_list(email_override.get("cc") or headers.get("cc")),
        bcc=_list(email_override.get("bcc") or headers.get("bcc")),
        reply_to=email_override.get("reply_to") or headers.get("reply_to"),
        headers=dict(extra_headers or {}),
        tags=tuple(tags),
        attachments=tuple(
            [
                *_attachments(email_override.get("attachments")),
                *_attachments(provider_override.get("attachment")),
                *_attachments(provider_override.get("attachments")),
            ]
        ),
        track_opens=tracking.get("open"),
        track_clicks=tracking.get("click"),
        provider_body=dict(provider_override.get("body") or {}),
    )
