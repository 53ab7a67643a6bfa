"""PostgreSQL stopped while a bulk job turns its users into messages (``tidings serve
--no-workers``, so that nothing but the run writes): the run waits the outage out, then
finishes, and every user has exactly one message."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.reliability.conftest import API_KEY, Cluster, PgCluster, wait_until

USERS = 60_000
CHUNK = 5000
OUTAGE_S = 5.0


def test_a_postgres_outage_mid_run_makes_one_message_per_user(
    pg_cluster: PgCluster, make_cluster: Callable[[str], Cluster]
) -> None:
    cluster = make_cluster(pg_cluster.url)
    api, api_url = cluster.serve()
    http = httpx.Client(
        base_url=api_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60
    )
    message = {"event": "e", "content": {"title": "Hi {{profile.name}}", "body": "b"}}
    job_id = http.post("/bulk", json={"message": message}).json()["jobId"]
    for start in range(0, USERS, CHUNK):
        users: list[Any] = [
            {"profile": {"email": f"o{i}@bulk.test", "name": f"O{i}"}}
            for i in range(start, start + CHUNK)
        ]
        assert http.post(f"/bulk/{job_id}", json={"users": users}).status_code == 204
    assert http.post(f"/bulk/{job_id}/run").status_code == 204

    def job() -> dict[str, Any]:
        found: dict[str, Any] = http.get(f"/bulk/{job_id}").json()["job"]
        return found

    wait_until(lambda: job()["enqueued"] >= 1000, 60, "the run to make its first messages")
    pg_cluster.stop()
    down_at = time.monotonic()
    answers: set[int] = set()
    while time.monotonic() - down_at < OUTAGE_S:  # the outage, watched from outside
        answers.add(http.get(f"/bulk/{job_id}").status_code)
    pg_cluster.start()
    assert answers <= {200, 503}, answers

    done = wait_until(lambda: (j := job())["status"] == "COMPLETED" and j, 180, "the job done")
    assert (done["received"], done["enqueued"], done["failures"], done["pending"]) == (
        USERS,
        USERS,
        0,
        0,
    )
    # One message per user: as many messages under the job's request as users, no more.
    assert sum(done["statuses"].values()) == USERS, done["statuses"]
    assert api.alive()
    assert "the database failed; trying again" in api.output(), api.output()[-3000:]
