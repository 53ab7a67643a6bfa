"""Prometheus metrics: what a process did (counters), and the queue as stored (gauges).

Each app has its own registry, so several Tidings apps in one process (tests) do not clash.
Counters are per process; the message gauges are read from the database at scrape time, so
every process reports the same, whole picture.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.accepted = Counter(
            "tidings_messages_accepted_total",
            "Messages accepted by POST /send (one per recipient).",
            registry=self.registry,
        )
        self.attempts = Counter(
            "tidings_send_attempts_total",
            "Calls to Mailgun's Messages API, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.attempt_seconds = Histogram(
            "tidings_send_attempt_seconds",
            "Duration of calls to Mailgun's Messages API.",
            registry=self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.events = Counter(
            "tidings_provider_events_total",
            "Mailgun events received, by kind and road (webhook or poll); duplicates included.",
            ["event", "source"],
            registry=self.registry,
        )
        self.webhooks_refused = Counter(
            "tidings_webhooks_refused_total",
            "Signed webhooks refused, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.messages = Gauge(
            "tidings_messages",
            "Stored messages by status (read from the database at scrape time).",
            ["status"],
            registry=self.registry,
        )
        self.queue_due = Gauge(
            "tidings_queue_due",
            "Messages waiting to be sent whose time has come.",
            registry=self.registry,
        )
        self.loop_last_success = Gauge(
            "tidings_loop_last_success_timestamp_seconds",
            "When each background loop of this process last completed a cycle (unix time).",
            ["loop"],
            registry=self.registry,
        )
        self.loop_failures = Counter(
            "tidings_loop_failures_total",
            "Failed cycles of each background loop of this process (it backs off and retries).",
            ["loop"],
            registry=self.registry,
        )
        self.swept = Counter(
            "tidings_swept_rows_total",
            "Expired rows deleted by the scheduled sweeps, by table.",
            ["table"],
            registry=self.registry,
        )
