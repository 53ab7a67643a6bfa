"""Which providers a message may go through, in order: Courier's routing, decided purely.

Inputs are the message's ``routing`` (``{method: single|all, channels: [...]}``, where an
entry is a channel name, a provider key, or a nested routing), its ``channels`` map
(``{"email": {"providers": [...]}}``), and the workspace's routing strategy (the same three
parts: ``routing``, ``channels``, ``providers``) when the message gives none of its own.

Tidings delivers email only. With ``single`` the first entry Tidings can deliver wins and
the entries before it are recorded as skipped; with ``all`` email is delivered and every
other entry is recorded as not delivered. A message that asks only for channels Tidings
does not deliver is :class:`Unroutable`, with a reason naming them — never sent as email.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["EMAIL", "Route", "Unroutable", "plan_route"]

EMAIL = "email"


@dataclass(frozen=True, slots=True)
class Route:
    """Provider keys to try in order, and what was asked for but is not delivered."""

    providers: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...] = ()
    method: str = "single"


@dataclass(frozen=True, slots=True)
class Unroutable:
    reason: str


@dataclass(slots=True)
class _Walk:
    known: Mapping[str, str]  # provider key -> channel
    delivered: frozenset[str]
    providers: list[str]
    skipped: list[tuple[str, str]]
    found: bool = False

    def deliverable(self, entry: str) -> bool:
        return entry in self.delivered or self.known.get(entry) in self.delivered

    def why_not(self, entry: str) -> str:
        if entry in self.known:
            return f"provider {entry} delivers {self.known[entry]}, which Tidings does not deliver"
        return f"Tidings does not deliver the {entry} channel"

    def visit(self, routing: Mapping[str, Any]) -> bool:
        """Walk one routing node; True when it found something deliverable."""
        method = routing.get("method") or "single"
        found_here = False
        for entry in routing.get("channels") or []:
            if isinstance(entry, Mapping):
                got = self.visit(entry)
            else:
                name = str(entry)
                got = self.deliverable(name)
                if got:
                    if name in self.known:
                        self.providers.append(name)
                elif not (method == "single" and (found_here or self.found)):
                    self.skipped.append((name, self.why_not(name)))
            found_here = found_here or got
            if got and method == "single":
                # Courier's single: the first channel that can take it; later ones are
                # fallbacks Tidings never needs (email is always taken by email).
                break
        self.found = self.found or found_here
        return found_here


def _names(skipped: list[tuple[str, str]]) -> str:
    return ", ".join(dict.fromkeys(name for name, _ in skipped))


def plan_route(
    routing: Mapping[str, Any] | None,
    channels: Mapping[str, Any] | None,
    strategy: Mapping[str, Any] | None,
    *,
    known_providers: Mapping[str, str],
    default_provider: str | None,
    delivered_channels: frozenset[str] = frozenset({EMAIL}),
) -> Route | Unroutable:
    """The route of one message (see the module doc). ``known_providers``: provider key ->
    the channel it delivers; ``default_provider``: the key of the workspace's default
    configuration, used when nothing names a provider."""
    own = bool(routing) or bool(((channels or {}).get(EMAIL) or {}).get("providers"))
    if not own and strategy:
        routing = strategy.get("routing") or None
        channels = strategy.get("channels") or None
    walk = _Walk(known_providers, delivered_channels, [], [])
    method = "single"
    if routing:
        method = str(routing.get("method") or "single")
        if not walk.visit(routing):
            asked = _names(walk.skipped) or "no channel"
            return Unroutable(
                f"Tidings delivers {', '.join(sorted(delivered_channels))} only; this message "
                f"asks for {asked}"
            )
    named = [str(p) for p in (((channels or {}).get(EMAIL) or {}).get("providers") or [])]
    order = named or walk.providers or ([default_provider] if default_provider else [])
    return Route(providers=tuple(dict.fromkeys(order)), skipped=tuple(walk.skipped), method=method)
