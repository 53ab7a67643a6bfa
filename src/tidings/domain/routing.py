"""Courier routing, decided: which providers a message goes through, in which order.

A pure function of the message's ``routing`` and ``channels`` (as ``/send`` stored them), the
routing strategy that applies (a template's, or the workspace default) and what Tidings can
deliver. It answers a :class:`Route` (the provider order for email, and what was left out and
why) or :class:`Unroutable` (nothing asked for can be delivered, with a reason naming the
channels). No I/O: the dispatcher loads, calls this, and stores the route it got.

Precedence: message-level settings win over the strategy's. Within a level,
``channels.email.providers`` beats provider keys named in ``routing.channels``; with none
anywhere, email goes through the default provider (Tidings' behaviour before routing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Method = Literal["single", "all"]

EMAIL = "email"
# Courier's channel ids (SendMessageParams: "Valid ChannelId's"), and "chat" which its
# routing docs use too. A routing entry that is none of these and no provider key is refused
# by the API; the planner treats it as a channel it cannot deliver.
COURIER_CHANNELS = frozenset(
    {"email", "sms", "push", "inbox", "direct_message", "banner", "webhook", "chat"}
)
MAX_DEPTH = 5  # nested routing objects, counting the top one
MAX_ENTRIES = 20  # entries in one routing.channels list, providers in one channel list


@dataclass(frozen=True, slots=True)
class Route:
    """The resolved provider order (tried one after another), what was left out and why,
    and the top routing method. Stored whole in the message's ``route`` column."""

    providers: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...] = ()
    method: Method = "single"

    def as_json(self) -> dict[str, Any]:
        return {
            "providers": list(self.providers),
            "skipped": [[name, why] for name, why in self.skipped],
            "method": self.method,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Route:
        method = data.get("method", "single")
        if method not in ("single", "all"):
            raise ValueError(f"route.method: {method!r} is not single or all")
        return cls(
            providers=tuple(str(p) for p in data.get("providers", ())),
            skipped=tuple((str(n), str(w)) for n, w in data.get("skipped", ())),
            method=method,
        )


@dataclass(frozen=True, slots=True)
class Unroutable:
    """Nothing the message asks for can be delivered; ``reason`` is for a person."""

    reason: str


@dataclass(frozen=True, slots=True)
class _Walk:
    """What one routing object gave: whether email is delivered through it, the email
    provider keys it names (in order), what it left out, and the undeliverable channels."""

    email: bool
    keys: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]
    wanted: tuple[str, ...]


def _dedupe(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _walk(
    routing: Mapping[str, Any],
    known_providers: Mapping[str, str],
    delivered: frozenset[str],
    depth: int,
) -> _Walk:
    method = routing.get("method", "single")
    entries = routing.get("channels") or []
    keys: list[str] = []
    skipped: list[tuple[str, str]] = []
    wanted: list[str] = []
    email = False
    for entry in entries:
        if isinstance(entry, Mapping):
            if depth >= MAX_DEPTH:
                skipped.append(("routing", f"nested deeper than {MAX_DEPTH} levels"))
                continue
            inner = _walk(entry, known_providers, delivered, depth + 1)
            ok, inner_keys = inner.email, inner.keys
            why_skipped: list[tuple[str, str]] = list(inner.skipped)
            inner_wanted = list(inner.wanted)
            name = "routing"
        else:
            name = str(entry)
            channel = known_providers.get(name, name)
            ok = channel in delivered
            inner_keys = (name,) if name in known_providers and ok else ()
            why_skipped = [] if ok else [(name, _why_not(name, channel, known_providers))]
            inner_wanted = [] if ok else [channel]
        if email and method == "single":
            # Already routed: later entries are fallbacks, so their email providers join
            # the order; what they cannot deliver was never going to be tried first.
            if ok:
                keys.extend(inner_keys)
            continue
        if ok:
            email = True
            keys.extend(inner_keys)
            skipped.extend(why_skipped)  # parts of a nested routing left out
        else:
            skipped.extend(why_skipped)
            wanted.extend(inner_wanted)
    return _Walk(email, _dedupe(keys), tuple(skipped), _dedupe(wanted))


def _why_not(name: str, channel: str, known_providers: Mapping[str, str]) -> str:
    if name in known_providers:
        return f"Tidings does not deliver {channel} (provider {name})"
    if channel in COURIER_CHANNELS:
        return f"Tidings does not deliver {channel}"
    return f"{name} is neither a channel nor a provider Tidings has"


def _channel(channels: Mapping[str, Any] | None, name: str) -> Mapping[str, Any]:
    spec = (channels or {}).get(name)
    return spec if isinstance(spec, Mapping) else {}


def plan_route(
    message_routing: Mapping[str, Any] | None,
    message_channels: Mapping[str, Any] | None,
    strategy: Mapping[str, Any] | None,
    *,
    known_providers: Mapping[str, str],
    delivered_channels: frozenset[str] = frozenset({EMAIL}),
    default_provider: str | None,
) -> Route | Unroutable:
    """Decide the route (see the module docstring for the precedence).

    ``message_routing`` is Courier's ``{method, channels}``; ``message_channels`` maps a
    channel to ``{providers, routing_method}``; ``strategy`` is ``{routing, channels,
    providers}`` or None; ``known_providers`` maps each provider key to its channel.
    """
    strategy = strategy or {}
    strategy_routing = strategy.get("routing")
    strategy_channels = strategy.get("channels")
    routing = message_routing if message_routing is not None else strategy_routing
    skipped: list[tuple[str, str]] = []
    method: Method = "single"
    routing_keys: tuple[str, ...] = ()
    if isinstance(routing, Mapping) and routing.get("channels"):
        method = "all" if routing.get("method") == "all" else "single"
        walked = _walk(routing, known_providers, delivered_channels, 1)
        skipped.extend(walked.skipped)
        if not walked.email:
            asked = ", ".join(walked.wanted) or "nothing"
            only = ", ".join(sorted(delivered_channels))
            return Unroutable(f"Tidings delivers {only} only; this message asks for {asked}")
        routing_keys = walked.keys
    message_email = _channel(message_channels, EMAIL)
    strategy_email = _channel(strategy_channels, EMAIL)
    routing_method = message_email.get("routing_method") or strategy_email.get("routing_method")
    if routing_method == "all":
        return Unroutable(
            "channels.email.routing_method 'all' would send the same email through every "
            "provider; Tidings sends each email once (use 'single' to fail over in order)"
        )
    candidates: Sequence[str]
    message_keys = routing_keys if message_routing is not None else ()
    strategy_keys = routing_keys if message_routing is None else ()
    for candidates in (
        message_email.get("providers") or (),
        message_keys,
        strategy_email.get("providers") or (),
        strategy_keys,
        (default_provider,) if default_provider else (),
    ):
        usable: list[str] = []
        for key in candidates:
            if known_providers.get(key) == EMAIL:
                usable.append(key)
            else:
                skipped.append((key, f"{key} is not an email provider Tidings has"))
        if usable:
            return Route(_dedupe(usable), tuple(dict.fromkeys(skipped)), method)
    return Unroutable("no email provider is configured")
