"""SIGKILL of one of two ``tidings worker`` processes mid-run under load: the other takes over
the dead one's leases, looks its unanswered sends up in Mailgun's event log, and every message
that got a 202 is sent exactly once. Prints its figures (docs/RELIABILITY.md)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from tests.reliability.conftest import (
    FAST,
    SENT_OR_LATER,
    Cluster,
    Load,
    statuses,
    wait_until,
)

KILL_AFTER = 60  # accepted when the worker is killed
TOTAL = 150  # accepted over the whole run


def test_a_killed_worker_loses_nothing_and_sends_nothing_twice(
    postgres_url: str,  # first: its database is dropped only after the processes stopped
    make_cluster: Callable[[str], Cluster],
) -> None:
    cluster = make_cluster(postgres_url)
    api, api_url = cluster.serve()
    cluster.add_provider(api_url)
    doomed, survivor = cluster.worker("worker-1"), cluster.worker("worker-2")
    cluster.wait_started(doomed, survivor)
    sandbox = cluster.sandbox

    load = Load(api_url)
    load.start()
    try:
        wait_until(lambda: load.accepted_count() >= KILL_AFTER, 120, "messages accepted")
        # Mid-run: both workers busy (the dead one's share is sent by then).
        wait_until(lambda: len(sandbox.copies_by_tidings_id()) >= KILL_AFTER // 3, 120, "sends")
        doomed.kill()
        killed_at = time.monotonic()
        backlog = {mid for mid, _ in load.accepted}
        wait_until(lambda: load.accepted_count() >= TOTAL, 120, f"{TOTAL} messages accepted")
    finally:
        load.stop()
    accepted = {mid for mid, _ in load.accepted}

    wait_until(
        lambda: backlog <= set(sandbox.copies_by_tidings_id()), 120, "the backlog to be sent", 0.5
    )
    drained_s = time.monotonic() - killed_at
    wait_until(
        lambda: accepted <= set(sandbox.copies_by_tidings_id()), 120, "every message sent", 0.5
    )

    def all_sent() -> dict[str, str] | None:
        found = statuses(api_url)
        return found if all(found.get(mid) in SENT_OR_LATER for mid in accepted) else None

    final = wait_until(all_sent, 60, "every accepted message to be SENT or later", 0.5)
    copies = sandbox.copies_by_tidings_id()
    duplicates = {mid: n for mid, n in copies.items() if n > 1}
    lost = [mid for mid in accepted if copies[mid] == 0]
    print(
        "\nWorker SIGKILL figures:\n"
        f"  2 worker processes, 1 API process (--no-workers); worker-1 SIGKILLed after "
        f"{len(backlog)} accepted; leases of {FAST['TIDINGS_LEASE_S']} s\n"
        f"  messages accepted (202): {len(accepted)}; refused: {dict(load.refused)}\n"
        f"  sent (copies at Mailgun): {sum(copies.values())}; lost: {len(lost)}; "
        f"duplicates: {len(duplicates)}\n"
        f"  seconds from the kill until what was accepted before it was all sent: "
        f"{drained_s:.1f}\n"
        f"  final statuses of accepted: {dict(Counter(final[mid] for mid in accepted))}"
    )
    assert not lost and not duplicates
    assert survivor.alive() and api.alive()
