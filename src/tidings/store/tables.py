"""The schema: every table Tidings keeps, as SQLAlchemy Core metadata (Alembic migrates it).

Times are stored as timezone-aware UTC datetimes. JSON columns hold documents that are read
whole (payloads, settings, history data); anything filtered on has its own column.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no zone: it is put back on read)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


TS = UTCDateTime()

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key_hash", sa.String(128), nullable=False, unique=True),
    sa.Column("last4", sa.String(4), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    # A person's label for the key, and when it was last accepted (`tidings keys list`).
    sa.Column("name", sa.String(100), nullable=True),
    sa.Column("last_used_at", TS, nullable=True),
)

ui_sessions = sa.Table(
    "ui_sessions",
    metadata,
    # Web UI sessions live here, not in the cookie alone, so that logout revokes them.
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("expires_at", TS, nullable=False, index=True),
    sa.Column("last_seen_at", TS, nullable=True),
)

rate_buckets = sa.Table(
    "rate_buckets",
    metadata,
    # One token bucket per provider configuration, shared by every worker on the database,
    # and the pause Mailgun asked for (420/429) until the time it gave.
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("tokens", sa.Float, nullable=False),
    sa.Column("refilled_at", TS, nullable=False),
    sa.Column("paused_until", TS, nullable=True),
    # How many tokens the latest reservation took: RETURNING sees only the new row, and
    # the grant is computed from the old one in the same UPDATE.
    sa.Column("taken", sa.Float, nullable=False, server_default="0"),
    # Refused sends are told to come back one token apart after this time, then it moves on:
    # a burst is spread over the time it needs instead of all asking again at once.
    sa.Column("backlog_until", TS, nullable=True),
)

providers = sa.Table(
    "providers",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("alias", sa.String(200), nullable=True, unique=True),
    sa.Column("title", sa.String(200), nullable=True),
    sa.Column("settings", sa.JSON, nullable=False),
    # The secret part of this configuration's webhook URL: unguessable, never reused.
    sa.Column("webhook_token", sa.String(64), nullable=False, unique=True),
    sa.Column("is_default", sa.Boolean, nullable=False, default=False),
    sa.Column("origin", sa.String(16), nullable=False, default="api"),  # api | env | sandbox
    sa.Column("created", TS, nullable=False),
    sa.Column("updated", TS, nullable=False),
)

profiles = sa.Table(
    "profiles",
    metadata,
    sa.Column("user_id", sa.String(256), primary_key=True),
    sa.Column("profile", sa.JSON, nullable=False),
    sa.Column("preferences", sa.JSON, nullable=False),
    sa.Column("updated", TS, nullable=False),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("request_id", sa.String(40), nullable=False, index=True),
    sa.Column("recipient", sa.String(320), nullable=True),  # user_id, else email
    sa.Column("recipient_email", sa.String(320), nullable=True, index=True),
    sa.Column("user_id", sa.String(256), nullable=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("reason", sa.String(32), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("hint", sa.Text, nullable=True),
    sa.Column("trace_id", sa.String(200), nullable=True, index=True),
    sa.Column("event", sa.String(200), nullable=True),
    sa.Column("provider_id", sa.String(64), nullable=True),
    sa.Column("provider_domain", sa.String(256), nullable=True),
    sa.Column("provider_message_id", sa.String(320), nullable=True, index=True),
    # What /send accepted for this recipient: content, data, overrides, attachments.
    sa.Column("payload", sa.JSON, nullable=False),
    # Status facts (see tidings.domain.status): each set from an event's own timestamp.
    sa.Column("facts", sa.JSON, nullable=False),
    sa.Column("enqueued", TS, nullable=False, index=True),
    sa.Column("sent", TS, nullable=True),
    sa.Column("delivered", TS, nullable=True),
    sa.Column("opened", TS, nullable=True),
    sa.Column("clicked", TS, nullable=True),
    # The queue: a message is due when queued and next_attempt_at has passed; a worker that
    # claims it holds a lease until lease_until.
    sa.Column("queued", sa.Boolean, nullable=False, default=True),
    sa.Column("next_attempt_at", TS, nullable=True),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_until", TS, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("in_doubt", sa.Boolean, nullable=False, default=False),
    sa.Column("expires_at", TS, nullable=True),
    sa.Column("rendered", sa.JSON, nullable=True),
    # The provider order the dispatcher resolved (tidings.domain.routing.Route.as_json),
    # frozen at the first dispatch so that a strategy edited later cannot reorder a message
    # half-way through its failover; and the index of the provider now being tried.
    sa.Column("route", sa.JSON, nullable=True),
    sa.Column("route_step", sa.Integer, nullable=False, server_default="0"),
    # The stored template (notifications API) the message was sent by, for its metrics.
    sa.Column("template_id", sa.String(64), nullable=True),
    # The recipient's tenant (to.tenant_id / to.context.tenant_id), for messages.list.
    sa.Column("tenant_id", sa.String(256), nullable=True),
    # Archived with its request (PUT /requests/{id}/archive): left out of messages.list
    # unless archived=true is asked.
    sa.Column("archived_at", TS, nullable=True),
    sa.Index("ix_messages_due", "queued", "next_attempt_at"),
    sa.Index("ix_messages_template", "template_id", "enqueued"),
    sa.Index("ix_messages_tenant", "tenant_id", "enqueued"),
)

routing_strategies = sa.Table(
    "routing_strategies",
    metadata,
    # Courier's routing strategies: documents read whole (routing, channels, providers).
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("tags", sa.JSON, nullable=True),
    sa.Column("routing", sa.JSON, nullable=False),
    sa.Column("channels", sa.JSON, nullable=False),
    sa.Column("providers", sa.JSON, nullable=False),
    sa.Column("created", TS, nullable=False, index=True),
    sa.Column("updated", TS, nullable=True),
    sa.Column("creator", sa.String(64), nullable=False),
    sa.Column("updater", sa.String(64), nullable=True),
    # Archived strategies are kept (messages may name them) but no longer listed or read.
    sa.Column("archived_at", TS, nullable=True),
)

routing_default = sa.Table(
    "routing_default",
    metadata,
    # The workspace's default strategy (a Tidings extension): at most one row, whose key is
    # always "workspace", so there can never be two defaults.
    sa.Column("scope", sa.String(16), primary_key=True),
    sa.Column(
        "strategy_id",
        sa.String(64),
        sa.ForeignKey("routing_strategies.id"),
        nullable=False,
    ),
    sa.Column("updated", TS, nullable=False),
)

message_tags = sa.Table(
    "message_tags",
    metadata,
    sa.Column(
        "message_id",
        sa.String(40),
        sa.ForeignKey("messages.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("tag", sa.String(128), primary_key=True, index=True),
)

history = sa.Table(
    "history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "message_id",
        sa.String(40),
        sa.ForeignKey("messages.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("ts", TS, nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    # The provider's identity of an event, so that an event is recorded once however often it
    # arrives (webhook and polling both).
    sa.Column("event_key", sa.String(200), nullable=True),
    sa.UniqueConstraint("message_id", "event_key", name="uq_history_message_event"),
)

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "message_id",
        sa.String(40),
        sa.ForeignKey("messages.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("base_url", sa.String(300), nullable=False),
    sa.Column("started_at", TS, nullable=False),
    sa.Column("finished_at", TS, nullable=True),
    sa.Column("outcome", sa.String(16), nullable=True),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("request", sa.JSON, nullable=True),
    sa.Column("response", sa.Text, nullable=True),
    sa.Column("duration_ms", sa.Float, nullable=True),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("status_code", sa.Integer, nullable=False),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("expires_at", TS, nullable=False, index=True),
)

suppressions = sa.Table(
    "suppressions",
    metadata,
    sa.Column("address", sa.String(320), primary_key=True),  # lower-cased
    sa.Column("reason", sa.String(32), nullable=False),  # bounce | complaint | unsubscribe
    sa.Column("code", sa.Integer, nullable=True),
    sa.Column("detail", sa.Text, nullable=True),
    sa.Column("message_id", sa.String(40), nullable=True),
    sa.Column("created_at", TS, nullable=False),
)

unmatched_events = sa.Table(
    "unmatched_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_key", sa.String(200), nullable=False, unique=True),
    sa.Column("provider_id", sa.String(64), nullable=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("recipient", sa.String(320), nullable=True),
    sa.Column("provider_message_id", sa.String(320), nullable=True),
    sa.Column("received_at", TS, nullable=False, index=True),
    sa.Column("source", sa.String(16), nullable=False),  # webhook | poll
    sa.Column("raw", sa.JSON, nullable=False),
)

webhook_tokens = sa.Table(
    "webhook_tokens",
    metadata,
    # A signed webhook's token is accepted once; kept a little longer than the freshness window.
    sa.Column("token", sa.String(128), primary_key=True),
    sa.Column("seen_at", TS, nullable=False, index=True),
)

poll_cursors = sa.Table(
    "poll_cursors",
    metadata,
    sa.Column("key", sa.String(400), primary_key=True),  # base_url + domain
    sa.Column("settled_until", TS, nullable=False),
    sa.Column("last_webhook_at", TS, nullable=True),
    # Start of the current unbroken run of signed webhooks (auto polling mode).
    sa.Column("webhooks_since", TS, nullable=True),
    # The worker polling this (host, domain) now: with several workers, one polls at a time.
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_until", TS, nullable=True),
    sa.Column("updated", TS, nullable=False),
)

status_endpoints = sa.Table(
    "status_endpoints",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("url", sa.String(2000), nullable=False),
    sa.Column("secret", sa.String(128), nullable=True),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("created", TS, nullable=False),
)

status_deliveries = sa.Table(
    "status_deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "endpoint_id",
        sa.String(40),
        sa.ForeignKey("status_endpoints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("message_id", sa.String(40), nullable=False),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", TS, nullable=True, index=True),
    sa.Column("delivered_at", TS, nullable=True),
    sa.Column("last_status", sa.Integer, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created", TS, nullable=False),
)

status_events = sa.Table(
    "status_events",
    metadata,
    # Every status change, in commit order: what SSE streams and outbound webhooks carry.
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(40), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("ts", TS, nullable=False),
    sa.Column("details", sa.JSON, nullable=False),
)

templates = sa.Table(
    "templates",
    metadata,
    # Courier's notification templates. ``draft`` is the mutable document (name, tags, brand,
    # routing, subscription, content, email); publishing copies it into template_versions.
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("draft", sa.JSON, nullable=False),
    sa.Column("created", TS, nullable=False, index=True),
    sa.Column("creator", sa.String(64), nullable=False),
    sa.Column("updated", TS, nullable=False),
    sa.Column("updater", sa.String(64), nullable=False),
    # The version sends use ("v002"), null until the first publish; and how many versions
    # there are, so that the next name is computed under the row's lock.
    sa.Column("published_version", sa.String(16), nullable=True),
    sa.Column("version_count", sa.Integer, nullable=False, server_default="0"),
    # Archived templates stay readable (their history) but are neither listed nor sent.
    sa.Column("archived_at", TS, nullable=True),
)

template_versions = sa.Table(
    "template_versions",
    metadata,
    # Published versions: written once, never updated.
    sa.Column(
        "template_id",
        sa.String(64),
        sa.ForeignKey("templates.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("version", sa.String(16), primary_key=True),
    sa.Column("document", sa.JSON, nullable=False),
    sa.Column("created", TS, nullable=False),
    sa.Column("creator", sa.String(64), nullable=False),
)

template_aliases = sa.Table(
    "template_aliases",
    metadata,
    # ``/send``'s ``event`` → template. The primary key makes an alias belong to one template
    # however many requests race for it; archiving a template frees its aliases.
    sa.Column("alias", sa.String(200), primary_key=True),
    sa.Column(
        "template_id",
        sa.String(64),
        sa.ForeignKey("templates.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("created", TS, nullable=False),
)

brands = sa.Table(
    "brands",
    metadata,
    # Courier's brands: settings and snippets are documents read whole, in the API's shape.
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("settings", sa.JSON, nullable=False),
    sa.Column("snippets", sa.JSON, nullable=True),
    # Counts the writes: Courier's "version" of a brand, published as soon as written.
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created", TS, nullable=False, index=True),
    sa.Column("updated", TS, nullable=False),
)

brand_default = sa.Table(
    "brand_default",
    metadata,
    # The workspace's default brand: at most one row, keyed "workspace" (as routing_default).
    sa.Column("scope", sa.String(16), primary_key=True),
    sa.Column("brand_id", sa.String(64), sa.ForeignKey("brands.id"), nullable=False),
    sa.Column("updated", TS, nullable=False),
)

audiences = sa.Table(
    "audiences",
    metadata,
    # Courier's audiences: a filter over profile fields, kept in the API's (checked) shape
    # and evaluated when members are asked for, so membership follows the profiles.
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("filter", sa.JSON, nullable=False),
    # Counts the writes: the ``audience_version`` a member list answers with.
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created", TS, nullable=False, index=True),
    sa.Column("updated", TS, nullable=False),
)

lists = sa.Table(
    "lists",
    metadata,
    # Courier's lists: a dotted id (tidings.domain.lists), a name and list-wide preferences
    # (RecipientPreferences, kept exactly as given). Archived lists keep their subscribers,
    # are neither listed nor sent to, and come back whole with restore.
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("preferences", sa.JSON, nullable=True),
    sa.Column("created", TS, nullable=False),
    sa.Column("updated", TS, nullable=False),
    sa.Column("archived_at", TS, nullable=True),
)

list_subscriptions = sa.Table(
    "list_subscriptions",
    metadata,
    # One row per (list, user): the subscription's own preferences, exactly as given.
    sa.Column(
        "list_id",
        sa.String(255),
        sa.ForeignKey("lists.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("user_id", sa.String(256), primary_key=True, index=True),
    sa.Column("preferences", sa.JSON, nullable=True),
    sa.Column("created", TS, nullable=False),
)

message_lists = sa.Table(
    "message_lists",
    metadata,
    # The list a message was sent through (to.list_id, to.list_pattern), for
    # messages.list?list=. No foreign key to lists: the record outlives the list.
    sa.Column(
        "message_id",
        sa.String(40),
        sa.ForeignKey("messages.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("list_id", sa.String(255), primary_key=True, index=True),
)

send_requests = sa.Table(
    "send_requests",
    metadata,
    # A /send with several recipients (its req_ id): how many messages it made (a list
    # send may make none), so GET /requests/{id} answers for it; and its archive time.
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("created", TS, nullable=False),
    sa.Column("archived_at", TS, nullable=True),
)

preference_sections = sa.Table(
    "preference_sections",
    metadata,
    # Courier's workspace preferences (sections): groups of subscription topics.
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("has_custom_routing", sa.Boolean, nullable=False),
    sa.Column("routing_options", sa.JSON, nullable=False),
    sa.Column("created", TS, nullable=False, index=True),
    sa.Column("creator", sa.String(64), nullable=True),
    sa.Column("updated", TS, nullable=False),
    sa.Column("updater", sa.String(64), nullable=True),
    sa.Column("archived_at", TS, nullable=True),
)

preference_topics = sa.Table(
    "preference_topics",
    metadata,
    # Subscription topics; archived topics are neither listed nor honoured at send (their
    # row stays so that templates and logs naming them still say what they were).
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column(
        "section_id",
        sa.String(64),
        sa.ForeignKey("preference_sections.id"),
        nullable=False,
        index=True,
    ),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("default_status", sa.String(16), nullable=False),
    sa.Column("allowed_preferences", sa.JSON, nullable=False),
    sa.Column("include_unsubscribe_header", sa.Boolean, nullable=False),
    sa.Column("routing_options", sa.JSON, nullable=False),
    sa.Column("topic_data", sa.JSON, nullable=False),
    sa.Column("created", TS, nullable=False),
    sa.Column("creator", sa.String(64), nullable=True),
    sa.Column("updated", TS, nullable=False),
    sa.Column("updater", sa.String(64), nullable=True),
    sa.Column("archived_at", TS, nullable=True),
)

user_preferences = sa.Table(
    "user_preferences",
    metadata,
    # A recipient's own choice for one topic (no row: the topic's default applies). The
    # recipient is a user_id, or for a send with an email address only, that address.
    sa.Column("user_id", sa.String(255), primary_key=True),
    sa.Column("topic_id", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("has_custom_routing", sa.Boolean, nullable=False),
    sa.Column("custom_routing", sa.JSON, nullable=False),
    sa.Column("updated", TS, nullable=False),
)

preference_logs = sa.Table(
    "preference_logs",
    metadata,
    # Every change of a user_preferences row, newest first by id (time-ordered ids).
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(255), nullable=False, index=True),
    sa.Column("topic_id", sa.String(64), nullable=False),
    sa.Column("topic_name", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("has_custom_routing", sa.Boolean, nullable=False),
    sa.Column("custom_routing", sa.JSON, nullable=False),
    sa.Column("previous", sa.JSON, nullable=True),
    # Who made it: "api", "unsubscribe" (the one-click link) or a provider event.
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("timestamp", TS, nullable=False, index=True),
)

server_secrets = sa.Table(
    "server_secrets",
    metadata,
    # Secrets the server makes for itself (the unsubscribe links' signing key), shared by
    # every process through the database; never shown by any route.
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
    sa.Column("created", TS, nullable=False),
)

bulk_jobs = sa.Table(
    "bulk_jobs",
    metadata,
    # Courier's bulk jobs: a message definition (as given) and the users added to it; running
    # the job turns each user into its own message, all under ``request_id``.
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("request_id", sa.String(40), nullable=False, unique=True),
    sa.Column("definition", sa.JSON, nullable=False),
    # CREATED, PROCESSING (run, users being turned into messages), COMPLETED, ERROR.
    sa.Column("status", sa.String(16), nullable=False),
    # Users added so far: also the next user's position (bulk_users.seq).
    sa.Column("received", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created", TS, nullable=False, index=True),
    sa.Column("updated", TS, nullable=False),
    sa.Column("started", TS, nullable=True),
    sa.Column("finished", TS, nullable=True),
    # The process turning the users into messages holds the job until then; a run that
    # finds it expired (that process died) takes the job over where it stopped.
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_until", TS, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
)

bulk_users = sa.Table(
    "bulk_users",
    metadata,
    # One row per user added to a bulk job, in the order added; ``message_id`` is set in the
    # same transaction that inserts the user's message, so a user is sent to at most once.
    sa.Column(
        "job_id",
        sa.String(40),
        sa.ForeignKey("bulk_jobs.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("seq", sa.Integer, primary_key=True),
    # The user as given (Courier's InboundBulkMessageUser), and the recipient made of it.
    sa.Column("user", sa.JSON, nullable=False),
    sa.Column("recipient", sa.JSON, nullable=False),
    # PENDING until the job runs, then ENQUEUED (with its message) or ERROR (with why).
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("message_id", sa.String(40), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
)
