"""Settings from the environment (pydantic-settings): the names are a contract, see DESIGN.md."""

from __future__ import annotations

from functools import cached_property

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tidings.domain.network import parse_origins


class Settings(BaseSettings):
    """Everything Tidings reads from its environment.

    ``TIDINGS_*`` configure the service; ``MAILGUN_*`` describe a default Mailgun provider so
    that a deployment can be configured without calling the Providers API. With no Mailgun
    configuration at all (neither variables nor a stored provider), ``tidings serve`` starts in
    sandbox mode.
    """

    model_config = SettingsConfigDict(env_prefix="TIDINGS_", extra="ignore")

    database_url: str = Field(
        default="sqlite+aiosqlite:///tidings.db",
        description="SQLAlchemy URL; a SQLite file in the working directory by default.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="Bearer token clients use. Unset: one is generated on first start.",
    )
    public_url: str | None = Field(
        default=None,
        description="How Mailgun reaches this server; used to build webhook URLs.",
    )
    unsubscribe_mailto: str | None = Field(
        default=None,
        description="An address that unsubscribes by email: topic emails' List-Unsubscribe "
        "names it (mailto:) beside the one-click HTTPS link.",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    sandbox: bool | None = Field(
        default=None,
        description="Force sandbox mode on or off; unset: on when no Mailgun is configured.",
    )
    worker_processes: int = Field(
        default=0,
        ge=0,
        le=16,
        description="`tidings serve`: run the workers in this many child processes "
        "(0: in the API process).",
    )
    dispatch_batch: int = Field(default=64, ge=1, le=1000)
    dispatch_concurrency: int = Field(default=32, ge=1, le=512)
    mailgun_batch_size: int = Field(
        default=1000,
        ge=1,
        le=1000,
        description="Recipients of one request sent in one Mailgun call (1: no batching).",
    )
    dispatch_idle_s: float = Field(default=0.5, gt=0)
    lease_s: float = Field(default=60.0, gt=0)
    send_timeout_s: float = Field(default=30.0, gt=0)
    render_timeout_s: float = Field(
        default=10.0, gt=0, description="A message whose template renders longer fails."
    )
    retry_base_s: float = Field(default=2.0, gt=0, description="First retry backoff.")
    retry_max_s: float = Field(default=3600.0, gt=0, description="Longest retry backoff.")
    message_timeout_ms: int = Field(default=72 * 3600 * 1000, gt=0)
    in_doubt_lag_s: float = Field(
        default=120.0,
        gt=0,
        description="How long Mailgun may take to show an event; an unanswered send is looked "
        "up in its event log for this long before it is sent again.",
    )
    provider_timeout_s: float = Field(
        default=300.0,
        gt=0,
        description="With another provider in a message's route: how long one provider may "
        "keep failing (retries, throttling) before the next is tried; timeout.provider wins.",
    )
    webhook_window_s: float = Field(default=900.0, gt=0)
    # Polling Mailgun's Events API (see DESIGN.md, "Polling by window, not by message").
    poll_interval_s: float = Field(default=15.0, gt=0, description="Between polling cycles.")
    poll_trust_s: float = Field(
        default=1800.0,
        ge=0,
        description="Events older than this are trustworthy (Mailgun's recipe: 30 min).",
    )
    poll_overlap_s: float = Field(
        default=60.0, ge=0, description="Re-read this much before the settled point."
    )
    poll_engagement_window_s: float = Field(
        default=7 * 24 * 3600.0,
        gt=0,
        description="How long after sending opens and clicks are still polled for.",
    )
    poll_auto_after_s: float = Field(
        default=3600.0,
        gt=0,
        description="auto mode: polling stops once webhooks have flowed this long.",
    )
    poll_auto_quiet_s: float = Field(
        default=900.0,
        gt=0,
        description="auto mode: webhooks count as stopped after this long without one.",
    )
    # Outbound status webhooks.
    notify_retry_base_s: float = Field(default=5.0, gt=0)
    notify_retry_max_s: float = Field(default=3600.0, gt=0)
    notify_timeout_s: float = Field(default=10.0, gt=0)
    log_level: str = "info"
    dns_server: str | None = Field(
        default=None,
        description="DNS server the doctor asks, host[:port]; unset: the system's resolvers.",
    )
    # Render pool: user templates render in worker processes with budgets (render/pool.py).
    render_workers: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="Render worker processes; unset: the number of CPUs, at least 2.",
    )
    render_memory_mb: int = Field(
        default=256,
        ge=16,
        description="Memory one render may use beyond its worker's own; over it, the "
        "message fails and the worker is replaced.",
    )
    render_max_loop_iterations: int = Field(
        default=100_000, ge=1, description="Loop iterations one template may run."
    )
    render_max_output_chars: int = Field(
        default=2_000_000, ge=1000, description="Characters one template may produce."
    )

    # Request bodies (api/guard.py): larger ones are refused with 413 before they are read.
    max_body_bytes: int = Field(
        default=1024 * 1024, gt=0, description="Largest request body, unless a route says more."
    )
    max_send_body_bytes: int = Field(
        default=6 * 1024 * 1024,
        gt=0,
        description="Largest /send body (Courier's cap; attachments come base64-encoded).",
    )
    max_send_recipients: int = Field(
        default=100_000,
        gt=0,
        description="Most messages one /send may make once its lists are expanded.",
    )
    max_webhook_body_bytes: int = Field(
        default=1024 * 1024, gt=0, description="Largest Mailgun webhook body."
    )

    # Background loops that outlive faults, and the readiness probe (/health/ready).
    loop_backoff_base_s: float = Field(
        default=0.5, gt=0, description="A failing loop's first wait before it tries again."
    )
    loop_backoff_max_s: float = Field(
        default=10.0, gt=0, description="A failing loop's longest wait between tries."
    )
    ready_stale_s: float = Field(
        default=30.0,
        gt=0,
        description="/health/ready: a loop is stale after this long plus its own cadence "
        "without a successful cycle.",
    )
    ready_db_timeout_s: float = Field(
        default=2.0, gt=0, description="/health/ready: how long the database may take to answer."
    )

    # Access: throttling of wrong keys, UI sessions, the embedded sandbox's inspection API.
    auth_fail_burst: int = Field(
        default=10, ge=1, description="Wrong keys one client address may try at once."
    )
    auth_fail_per_minute: float = Field(
        default=10.0, gt=0, description="Then this many more per minute (per address)."
    )
    auth_fail_global_burst: int = Field(
        default=200, ge=1, description="Wrong keys all addresses together may try at once."
    )
    auth_fail_global_per_minute: float = Field(
        default=120.0, gt=0, description="Then this many more per minute (all addresses)."
    )
    ui_session_ttl_s: float = Field(
        default=12 * 3600.0, gt=0, le=366 * 24 * 3600.0, description="How long a UI login lasts."
    )
    sandbox_expose: bool = Field(
        default=False,
        description="Let any client reach the embedded sandbox's inbox, inspection and fault "
        "APIs; off: loopback clients only.",
    )

    # Outbound network policy (README, "Outbound network policy").
    provider_hosts: str | None = Field(
        default=None,
        description="Comma-separated base URLs the operator trusts as provider hosts or "
        "proxies, e.g. http://127.0.0.1:8025; per-message overrides may name these too.",
    )
    allow_private_networks: bool | None = Field(
        default=None,
        description="Let targets given through the API reach loopback, link-local and private "
        "addresses; unset: on in sandbox mode only.",
    )

    # Scheduled sweeps of expired rows (workers/sweeper.py).
    sweep_interval_s: float = Field(
        default=300.0, gt=0, description="Between sweeps of expired rows."
    )
    sweep_batch: int = Field(
        default=1000, ge=1, le=100_000, description="Rows one sweep transaction deletes at most."
    )
    # Importing providers' own suppression lists (workers/suppression_sync.py).
    suppression_sync_interval_s: float = Field(
        default=3600.0,
        gt=0,
        description="Between imports of each provider's own suppression lists (Mailgun's "
        "bounces, unsubscribes, complaints); providers connect imports at once.",
    )

    mailgun_api_key: SecretStr | None = Field(default=None, validation_alias="MAILGUN_API_KEY")
    mailgun_domain: str | None = Field(default=None, validation_alias="MAILGUN_DOMAIN")
    mailgun_host: str | None = Field(default=None, validation_alias="MAILGUN_HOST")
    mailgun_from: str | None = Field(default=None, validation_alias="MAILGUN_FROM")
    mailgun_webhook_signing_key: SecretStr | None = Field(
        default=None, validation_alias="MAILGUN_WEBHOOK_SIGNING_KEY"
    )

    @field_validator("provider_hosts")
    @classmethod
    def _provider_hosts(cls, value: str | None) -> str | None:
        parse_origins(value)  # a wrong entry is refused at start, not at the first send
        return value

    @cached_property
    def mailgun_from_env(self) -> bool:
        return bool(self.mailgun_api_key and self.mailgun_domain)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
