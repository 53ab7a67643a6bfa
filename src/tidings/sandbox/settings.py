"""Settings of a sandbox: where it listens, which domains and keys it knows, how fast time runs.

Plain dataclasses so that the command line, the Tidings server and tests can all build one
without a settings framework.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_DOMAIN = "sandbox.tidings.test"
DEFAULT_API_KEY = "sandbox-api-key"
DEFAULT_SIGNING_KEY = "sandbox-signing-key"

# The status codes a fault may answer `POST /v3/{domain}/messages` with, in the order their
# rates are applied to one random draw.
FAULT_STATUSES: tuple[str, ...] = ("500", "503", "429", "420")


@dataclass
class FaultSettings:
    """Faults in force: the body of `POST /sandbox/api/faults`, every key optional."""

    status_rates: dict[str, float] = field(default_factory=dict)
    drop_rate: float = 0.0
    latency_ms: float = 0.0
    account_disabled: bool = False
    retry_after_s: float = 2.0
    seed: int | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "status_rates": {
                code: float(self.status_rates.get(code, 0.0)) for code in FAULT_STATUSES
            },
            "drop_rate": self.drop_rate,
            "latency_ms": self.latency_ms,
            "account_disabled": self.account_disabled,
            "retry_after_s": self.retry_after_s,
            "seed": self.seed,
        }


@dataclass
class SandboxSettings:
    """How a sandbox behaves. Every field has a default that works out of the box.

    ``event_delay`` is the time between the steps of a message's life (accepted → delivered →
    opened …); ``visibility_lag`` delays when events show in the Events API (never webhooks);
    ``retry_scale`` multiplies Mailgun's webhook retry schedule (0.001 turns 5 min into 0.3 s).
    """

    host: str = "127.0.0.1"
    port: int = 8025
    domains: list[str] = field(default_factory=lambda: [DEFAULT_DOMAIN])
    api_key: str = DEFAULT_API_KEY
    signing_key: str = DEFAULT_SIGNING_KEY
    event_delay: float = 0.1
    visibility_lag: float = 0.0
    retry_scale: float = 1.0
    seed: int | None = None
    faults: FaultSettings = field(default_factory=FaultSettings)
    # URLs registered, at start, for every webhook kind of every domain.
    webhook_urls: list[str] = field(default_factory=list)
    webhook_timeout: float = 10.0
    max_message_bytes: int = 25 * 1024 * 1024
    # The DKIM record the configured domains' answer lists (``{selector}._domainkey.D``,
    # ``k=rsa; p={key}``). Without a key none is listed, and Tidings' doctor looks for one
    # at the usual selectors; domains created through the API always get a generated one.
    dkim_selector: str = "k1"
    dkim_public_key: str | None = None
    # Only loopback clients may use the inbox, inspection and fault APIs (the Mailgun API
    # itself is guarded by the API key). Off standalone: a local tool; on when embedded in
    # a server that may listen on every interface.
    inspection_loopback_only: bool = False
