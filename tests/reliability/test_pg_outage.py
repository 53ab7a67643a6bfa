"""PostgreSQL stopped for 20 s mid-run under load, with ``tidings serve --no-workers`` and two
``tidings worker`` processes: nobody is restarted, and afterwards every message that got a
202 has been sent exactly once. Prints its figures (docs/RELIABILITY.md)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from tests.reliability.conftest import (
    SENT_OR_LATER,
    Cluster,
    Load,
    PgCluster,
    ready,
    statuses,
    wait_until,
)

OUTAGE_S = 20.0
# Sized for a slow, shared 2-core machine (the whole suite should take about 2 minutes).
BEFORE = 150  # accepted before the database goes away
TOTAL = 300  # accepted over the whole run


def test_a_postgres_outage_loses_nothing_and_sends_nothing_twice(
    pg_cluster: PgCluster, make_cluster: Callable[[str], Cluster]
) -> None:
    cluster = make_cluster(pg_cluster.url)
    api, api_url = cluster.serve()
    cluster.add_provider(api_url)
    workers = [cluster.worker("worker-1"), cluster.worker("worker-2")]
    cluster.wait_started(*workers)
    wait_until(lambda: ready(api_url) == 200, 30, "/health/ready to answer 200")

    load = Load(api_url)
    load.start()
    started = time.monotonic()
    try:
        wait_until(lambda: load.accepted_count() >= BEFORE, 120, f"{BEFORE} messages accepted")
        # Mid-run: the workers are sending when the database goes.
        wait_until(lambda: len(cluster.sandbox.copies_by_tidings_id()) >= BEFORE // 3, 60, "sends")
        sent_before_outage = sum(cluster.sandbox.copies_by_tidings_id().values())
        sending_rate = sent_before_outage / (time.monotonic() - started)

        # The outage: the database goes away for OUTAGE_S while the load goes on.
        pg_cluster.stop()
        down_at = time.monotonic()
        accepted_before_outage = load.accepted_count()
        refused_before_outage = load.refused_count()
        seen_ready: Counter[int | None] = Counter()
        while time.monotonic() - down_at < OUTAGE_S:
            seen_ready[ready(api_url)] += 1
        accepted_in_outage = load.accepted_count() - accepted_before_outage
        refused_in_outage = load.refused_count() - refused_before_outage
        pg_cluster.start()
        up_at = time.monotonic()
        backlog = {mid for mid, _ in load.accepted}

        wait_until(lambda: ready(api_url) == 200, 60, "/health/ready to be 200 again")
        ready_again_s = time.monotonic() - up_at

        def backlog_sent() -> bool:
            return backlog <= set(cluster.sandbox.copies_by_tidings_id())

        wait_until(
            backlog_sent, 180, "what was accepted before and during the outage to be sent", 0.5
        )
        drained_s = time.monotonic() - up_at
        wait_until(lambda: load.accepted_count() >= TOTAL, 120, f"{TOTAL} messages accepted")
    finally:
        load.stop()
    accepted = {mid for mid, _ in load.accepted}
    assert len(accepted) == len(load.accepted)

    wait_until(
        lambda: accepted <= set(cluster.sandbox.copies_by_tidings_id()),
        120,
        "every accepted message to reach Mailgun",
        0.5,
    )

    def all_sent() -> dict[str, str] | None:
        found = statuses(api_url)
        return found if all(found.get(mid) in SENT_OR_LATER for mid in accepted) else None

    final = wait_until(all_sent, 60, "every accepted message to be SENT or later", 0.5)
    copies = cluster.sandbox.copies_by_tidings_id()
    duplicates = {mid: n for mid, n in copies.items() if n > 1}
    refused_but_sent = {mid for mid in copies if mid not in accepted}
    lost = [mid for mid in accepted if copies[mid] == 0]

    worker_warnings = {
        w.name: sum(1 for line in w.output().splitlines() if "[warning" in line) for w in workers
    }
    print(
        "\nPostgreSQL outage figures:\n"
        f"  outage: {OUTAGE_S:g} s (pg_ctl stop -m fast), 1 API process (--no-workers), "
        "2 worker processes\n"
        f"  messages accepted (202): {len(accepted)} "
        f"({accepted_before_outage} before the outage, {accepted_in_outage} during it)\n"
        f"  refused during the outage: {refused_in_outage} "
        f"(all refusals over the run: {dict(load.refused)})\n"
        f"  sent (copies at Mailgun): {sum(copies.values())}, of accepted: "
        f"{sum(1 for mid in accepted if copies[mid])}; lost: {len(lost)}; "
        f"duplicates: {len(duplicates)}\n"
        f"  refused but committed, sent once anyway: {len(refused_but_sent)}\n"
        f"  /health/ready during the outage: {dict(seen_ready)}; 200 again "
        f"{ready_again_s:.1f} s after the database came back\n"
        f"  seconds to drain the backlog after the database came back: {drained_s:.1f}\n"
        f"  final statuses of accepted: {dict(Counter(final[mid] for mid in accepted))}\n"
        f"  before the outage: {sent_before_outage} sent, about {sending_rate:.0f} a second\n"
        f"  warning lines logged per worker over the run: {worker_warnings}"
    )
    for w in workers:
        print(f"  {w.name}'s warnings and recoveries:")
        for line in w.output().splitlines():
            if "[warning" in line or "resumed after" in line or "still failing" in line:
                print("    " + line[:300])

    assert not lost and not duplicates
    assert accepted_in_outage == 0  # a 202 only after a commit, and there was nothing to commit
    assert seen_ready[503] > 0 and 200 not in seen_ready
    assert all(w.alive() for w in workers), [w.output()[-3000:] for w in workers]
    assert api.alive()
    for w in workers:
        log = w.output()
        assert "resumed after" in log, log[-3000:]
