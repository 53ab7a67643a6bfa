"""Keeping Tidings' suppression list in step with each provider's own lists (issue 12).

Every ``TIDINGS_SUPPRESSION_SYNC_INTERVAL_S`` a supervised loop reads, for each provider
configuration whose provider keeps suppression lists (Mailgun: the domain's bounces,
unsubscribes and complaints), every page of them and adds the addresses Tidings does not list
yet, so that Tidings refuses a send the provider would drop anyway (605/606/607). The first
run is one interval after start: ``providers connect`` imports at once.

Configurations that talk to the same (provider, target, domain) are read once. A target that
cannot be read does not stop the others; the cycle then fails with one error naming every
target that failed (logged once per episode by the supervisor, which retries with backoff
until it works again). Several workers may sync at once: an address added twice is kept once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from pydantic import ValidationError

from tidings.providers.base import (
    ProviderConfig,
    ProviderError,
    RemoteSuppression,
    SuppressionLists,
)
from tidings.providers.registry import Providers, UnknownProvider
from tidings.runtime import Runtime
from tidings.store import providers as stored_providers
from tidings.store import suppressions
from tidings.store.database import Database
from tidings.workers.supervise import Supervised, wait_or_stop

log = structlog.get_logger("tidings.suppression_sync")


class SuppressionSyncError(ConnectionError):
    """Some providers' lists could not be read this cycle (the message names them and why);
    the loop tries again with backoff."""


@dataclass(frozen=True, slots=True)
class Target:
    """One provider list to import: a configuration chosen for its (provider, target, domain)."""

    provider_id: str
    provider: str
    config: ProviderConfig
    lists: SuppressionLists

    @property
    def where(self) -> str:
        """For people and logs: never a credential (``target`` has none)."""
        return f"{self.provider} {self.config.target} {self.config.domain or ''}".strip()


def targets(stored: Sequence[stored_providers.StoredProvider], live: Providers) -> list[Target]:
    found: dict[tuple[str, str, str], Target] = {}
    for provider in stored:
        try:
            impl = live.get(provider.provider)
        except UnknownProvider:
            continue
        if impl.suppressions is None:
            continue
        try:
            config = impl.parse_settings(provider.settings).to_config()
        except ValidationError:
            continue  # the Providers API refuses these; a hand-edited row is not read
        key = (provider.provider, config.target, config.domain or "")
        found.setdefault(key, Target(provider.id, provider.provider, config, impl.suppressions))
    return list(found.values())


async def import_target(db: Database, target: Target) -> tuple[int, int]:
    """Read one target's lists into Tidings' list: ``(read, added)``. Raises ProviderError."""

    async def write(page: list[RemoteSuppression]) -> int:
        async with db.write() as conn:
            return await suppressions.add_many(conn, [as_imported(entry) for entry in page])

    return await target.lists.import_all(target.config, write)


def as_imported(entry: RemoteSuppression) -> suppressions.Imported:
    return suppressions.Imported(
        entry.address, entry.reason, entry.code, entry.detail, entry.created_at
    )


async def sync_once(rt: Runtime, live: Providers) -> dict[str, int]:
    """Import every target once; addresses added, by target. Raises
    :class:`SuppressionSyncError` after trying them all if any failed."""
    async with rt.db.read() as conn:
        chosen = targets(await stored_providers.list_all(conn), live)
    added: dict[str, int] = {}
    failures: list[str] = []
    for target in chosen:
        try:
            _read, count = await import_target(rt.db, target)
        except ProviderError as exc:
            failures.append(f"{target.where}: {exc}")
            continue
        added[target.where] = count
        if count:
            log.info("imported suppressions", target=target.where, added=count)
    if failures:
        # The target first: the supervisor logs the first 200 characters of this.
        raise SuppressionSyncError("; ".join(failures))
    return added


class SuppressionSync:
    """The loop: wait an interval (cut short by ``stop``), then sync."""

    def __init__(self, rt: Runtime, live: Providers) -> None:
        self.rt = rt
        self.live = live

    async def run(self, stop: asyncio.Event) -> None:
        interval = self.rt.settings.suppression_sync_interval_s
        supervised = Supervised(
            self.rt,
            "suppression_sync",
            cadence_s=interval,
            what="importing the providers' suppression lists",
        )
        supervised.ok()  # nothing is owed before the first interval has passed

        due = False  # after a failed cycle the next one is due at once (after the backoff)

        async def step() -> None:
            nonlocal due
            if not due:
                await wait_or_stop(stop, interval)
                if stop.is_set():
                    return
                due = True
            await sync_once(self.rt, self.live)
            due = False

        await supervised.run(step, stop)
