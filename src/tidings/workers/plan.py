"""The dispatcher's decisions, as pure functions: what to do with one claimed message, and
with the answer a provider gave. No I/O: the dispatcher loop (``workers.dispatcher``) reads
what these need, calls them, and carries out what they return.

Two decisions:

* :func:`plan_message`: a claimed message -> skip it (not ours any more), end it
  (UNROUTABLE / UNDELIVERABLE, with why), or go on with a recipient, a route (the provider
  keys to try, frozen at the first dispatch) and the configuration of the provider whose
  turn it is.
* :func:`plan_outcome`: a classified answer -> sent, undeliverable, back in the queue at a
  time (retry, throttled, in doubt), or fail over to the next provider of the route.

Fail over happens only for reasons that are about the provider, not the recipient: a refusal
the provider marks ``provider_fault`` (a refused key, a disabled account, an unknown domain)
or retries that did not succeed within the provider timeout (``timeout.provider``). A hard
bounce, a suppressed address, a message the provider refuses as such, or an in-doubt attempt
(which may have arrived) never moves to another provider.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tidings.domain.errors import ValidationError
from tidings.domain.routing import Route, Unroutable, plan_route
from tidings.domain.status import HistoryType, Reason
from tidings.providers.base import OutcomeKind, Provider, ProviderConfig, SendOutcome
from tidings.workers import compose

__all__ = [
    "Configuration",
    "End",
    "FailOver",
    "Go",
    "Requeue",
    "RouteState",
    "Sent",
    "Situation",
    "Skip",
    "Undeliverable",
    "next_step",
    "pick_configuration",
    "plan_message",
    "plan_outcome",
]

History = list[tuple[str, dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Configuration:
    """A stored provider configuration, as the plan needs it."""

    id: str
    provider: str  # the provider key
    settings: dict[str, Any]
    is_default: bool = False


@dataclass(frozen=True, slots=True)
class RouteState:
    """The providers this message tries, in order; whose turn it is; since when."""

    providers: tuple[str, ...]
    step: int
    since: datetime
    skipped: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        return self.providers[self.step]

    def as_json(self) -> dict[str, Any]:
        return {
            "providers": list(self.providers),
            "since": self.since.isoformat(),
            "skipped": [list(s) for s in self.skipped],
        }

    @classmethod
    def from_row(cls, route: Any, step: int | None) -> RouteState | None:
        if not isinstance(route, dict) or not route.get("providers"):
            return None
        providers = tuple(str(p) for p in route["providers"])
        return cls(
            providers=providers,
            step=min(max(int(step or 0), 0), len(providers) - 1),
            since=datetime.fromisoformat(str(route["since"])),
            skipped=tuple((str(a), str(b)) for a, b in route.get("skipped") or []),
        )


@dataclass(frozen=True, slots=True)
class Situation:
    """One claimed message and everything the decision needs, read beforehand."""

    message_id: str
    owner: str
    now: datetime
    queued: bool
    lease_owner: str | None
    expires_at: datetime | None
    attempts: int
    in_doubt: bool
    has_open_attempt: bool
    user_id: str | None
    rendered: bool
    payload: dict[str, Any]
    stored_profile: dict[str, Any] | None
    provider_id: str | None  # the configuration the last attempt used
    route: RouteState | None
    configurations: Sequence[Configuration]
    strategy: dict[str, Any] | None  # the workspace's default routing strategy
    providers: Mapping[str, type[Provider]]  # provider key -> class
    trusted: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Skip:
    """Not this worker's to send any more (sent, canceled, or the lease moved on)."""


@dataclass(frozen=True, slots=True)
class End:
    """The message ends here: UNROUTABLE (``unroutable``) or UNDELIVERABLE."""

    reason: Reason
    message: str
    unroutable: bool = False
    history: History = field(default_factory=list)
    route: RouteState | None = None  # to store with it, when it was just planned


@dataclass(frozen=True, slots=True)
class Go:
    """Send it: to ``email`` through ``configuration`` (``config`` with overrides applied)."""

    email: str
    profile: dict[str, Any]
    route: RouteState
    route_changed: bool
    configuration: Configuration
    provider: type[Provider]
    config: ProviderConfig
    history: History = field(default_factory=list)


def pick_configuration(configurations: Sequence[Configuration], key: str) -> Configuration | None:
    """A provider key means that provider's default configuration: the one marked default,
    else the oldest (``configurations`` come oldest first)."""
    mine = [c for c in configurations if c.provider == key]
    return next((c for c in mine if c.is_default), mine[0] if mine else None)


def _workspace_default(configurations: Sequence[Configuration]) -> str | None:
    found = next((c for c in configurations if c.is_default), None)
    found = found or (configurations[0] if configurations else None)
    return found.provider if found else None


def next_step(route: RouteState, configurations: Sequence[Configuration]) -> int | None:
    """The next step of the route with a configuration to send through, if any."""
    for step in range(route.step + 1, len(route.providers)):
        if pick_configuration(configurations, route.providers[step]) is not None:
            return step
    return None


def _routed(route: Route, now: datetime) -> RouteState:
    return RouteState(
        providers=tuple(route.providers),
        step=0,
        since=now,
        skipped=tuple((str(a), str(b)) for a, b in route.skipped),
    )


def plan_message(s: Situation) -> Skip | End | Go:
    """What to do with a claimed message before anything is sent (see the module doc)."""
    if not s.queued or s.lease_owner != s.owner:
        return Skip()
    if s.expires_at is not None and s.now >= s.expires_at and not s.has_open_attempt:
        return End(
            Reason.FAILED,
            "the message expired before it could be sent "
            f"(expiry/timeout.message; {s.attempts} attempt(s) made)",
        )
    try:
        resolved = compose.resolve_recipient(s.payload, s.stored_profile)
    except ValidationError as exc:
        return End(Reason.NO_CHANNELS, str(exc), unroutable=True)
    history: History = []
    if not s.rendered and s.user_id:
        history.append(
            (
                HistoryType.PROFILE_LOADED.value,
                {
                    "user_id": s.user_id,
                    "found": s.stored_profile is not None,
                    "merged_profile": resolved.profile,
                },
            )
        )

    route = s.route
    changed = False
    if route is None:
        # The strategy copied when the message was accepted; older messages: today's.
        strategy = s.payload.get("strategy", s.strategy)
        planned = plan_route(
            s.payload.get("routing"),
            s.payload.get("channels"),
            strategy,
            known_providers={key: cls.channel for key, cls in s.providers.items()},
            default_provider=_workspace_default(s.configurations),
        )
        if isinstance(planned, Unroutable):
            if not s.configurations:
                return End(
                    Reason.NO_PROVIDERS,
                    "no provider configuration: add one with POST /providers",
                    unroutable=True,
                    history=history,
                )
            return End(Reason.NO_CHANNELS, planned.reason, unroutable=True, history=history)
        if not planned.providers:
            return End(
                Reason.NO_PROVIDERS,
                "no provider configuration: add one with POST /providers",
                unroutable=True,
                history=history,
            )
        route, changed = _routed(planned, s.now), True
        history.append(
            (
                HistoryType.ROUTED.value,
                {
                    "channel": "email",
                    "providers": list(route.providers),
                    "skipped": [{"target": a, "why": b} for a, b in route.skipped],
                },
            )
        )

    if resolved.email is None:
        why = (
            f"no email address: the profile of user '{s.user_id}' has no 'email' key "
            "and the recipient gave none"
            if s.user_id
            else "no email address: the recipient gave none"
        )
        return End(Reason.NO_CHANNELS, why, unroutable=True, history=history, route=route)

    configuration = _current_configuration(s, route)
    if configuration is None and not (s.in_doubt or s.has_open_attempt):
        # This provider has no configuration (any more): the next one that has.
        step = next_step(route, s.configurations)
        if step is not None:
            missing = route.key
            route, changed = RouteState(route.providers, step, s.now, route.skipped), True
            history.append(
                (
                    HistoryType.FAILOVER.value,
                    {
                        "left": {"provider": missing},
                        "why": f"no {missing} configuration: add one with POST /providers",
                        "next": route.key,
                    },
                )
            )
            configuration = pick_configuration(s.configurations, route.key)
    if configuration is None:
        wanted = ", ".join(route.providers[route.step :]) or "none"
        return End(
            Reason.NO_PROVIDERS,
            f"no provider configuration to send through (route: {wanted}): add one with "
            "POST /providers",
            unroutable=True,
            history=history,
            route=route if changed else None,
        )
    provider = s.providers.get(configuration.provider)
    if provider is None:
        return End(
            Reason.PROVIDER_ERROR,
            f"bad provider configuration: '{configuration.provider}' is not a provider "
            f"Tidings has; known: {', '.join(s.providers)}",
            history=history,
            route=route if changed else None,
        )
    try:
        config = compose.provider_config(
            provider, configuration.settings, s.payload, trusted=s.trusted
        )
    except (ValueError, TypeError) as exc:
        return End(
            Reason.PROVIDER_ERROR,
            f"bad provider configuration: {exc}",
            history=history,
            route=route if changed else None,
        )
    return Go(
        email=resolved.email,
        profile=resolved.profile,
        route=route,
        route_changed=changed,
        configuration=configuration,
        provider=provider,
        config=config,
        history=history,
    )


def _current_configuration(s: Situation, route: RouteState) -> Configuration | None:
    if (s.in_doubt or s.has_open_attempt) and s.provider_id:
        # An unanswered attempt is settled with the configuration it went to.
        used = next((c for c in s.configurations if c.id == s.provider_id), None)
        if used is not None:
            return used
    return pick_configuration(s.configurations, route.key)


# -- answers -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sent:
    """Accepted by the provider."""


@dataclass(frozen=True, slots=True)
class Undeliverable:
    reason: Reason
    message: str


@dataclass(frozen=True, slots=True)
class Requeue:
    """Back in the queue until ``retry_at``; ``in_doubt`` when it must be looked up first."""

    retry_at: datetime
    in_doubt: bool
    note: str | None = None


@dataclass(frozen=True, slots=True)
class FailOver:
    """Leave this provider for the route's step ``step``, now."""

    step: int
    why: str


def plan_outcome(
    outcome: SendOutcome,
    *,
    provider_name: str,
    number: int,
    now: datetime,
    expires_at: datetime | None,
    route: RouteState,
    next_step: int | None,
    provider_timeout_s: float | None,
    backoff_s: float,
    in_doubt_lag_s: float,
    paused_until: datetime | None = None,
    jitter_s: float = 0.0,
) -> Sent | Undeliverable | Requeue | FailOver:
    """What to do with one classified answer (see the module doc). ``backoff_s`` and
    ``jitter_s`` are drawn by the caller, so that this stays a function of its arguments."""
    kind = outcome.kind
    error = outcome.error_message
    if kind is OutcomeKind.SENT:
        return Sent()
    if kind is OutcomeKind.FAILED:
        if outcome.provider_fault and next_step is not None:
            return FailOver(next_step, f"{provider_name} refused: {error or 'no reason given'}")
        return Undeliverable(Reason.PROVIDER_ERROR, error or f"{provider_name} refused the message")
    if kind is OutcomeKind.IN_DOUBT:
        # It may have arrived: never sent elsewhere, and never given up on while in doubt.
        return Requeue(now + timedelta(seconds=in_doubt_lag_s), in_doubt=True)
    note = None
    if kind is OutcomeKind.THROTTLED and outcome.retry_at is not None:
        # Every sender of the configuration waits for the latest pause in force.
        retry_at = max(paused_until or outcome.retry_at, now) + timedelta(seconds=jitter_s)
        note = f"paused: {provider_name} asked to wait until {outcome.retry_at.isoformat()}"
    else:
        retry_at = now + timedelta(seconds=backoff_s)
    if next_step is not None and provider_timeout_s is not None:
        waited = (retry_at - route.since).total_seconds()
        if waited >= provider_timeout_s:
            return FailOver(
                next_step,
                f"no success through {provider_name} within the provider timeout "
                f"({provider_timeout_s:g} s, {number} attempt(s)): {error or 'no answer'}",
            )
    if expires_at is not None and retry_at >= expires_at:
        if next_step is not None:
            return FailOver(
                next_step,
                f"{provider_name} did not take it before the message expires: "
                f"{error or 'no answer'}",
            )
        return Undeliverable(
            Reason.FAILED, f"gave up after {number} attempt(s): {error or 'no answer'}"
        )
    return Requeue(retry_at, in_doubt=False, note=note)
