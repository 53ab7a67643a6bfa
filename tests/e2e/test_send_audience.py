"""``/send`` to ``to.audience_id`` end to end: Courier's SDK → Tidings → the Mailgun sandbox.

Every profile the audience's AND/OR filter matches, and no other, gets its own tracked
message (a ``user_id`` recipient), rendered with its own profile and delivered by the
sandbox. The expansion is :func:`tidings.store.audiences.members`, wired into ``/send`` by
the recipient-expansion module.
"""

from __future__ import annotations

import time
from typing import Any

from tests.e2e.conftest import RunningSandbox, RunningTidings

PEOPLE: dict[str, dict[str, Any]] = {
    # Oakland and (pro or over 40): members.
    "ada": {"email": "ada@acme.test", "name": "Ada", "city": "Oakland", "plan": "pro", "age": 36},
    "cy": {"email": "cy@acme.test", "name": "Cy", "city": "Oakland", "plan": "free", "age": 52},
    # Not members: the wrong city; neither pro nor over 40.
    "bob": {"email": "bob@acme.test", "name": "Bob", "city": "Berkeley", "plan": "pro", "age": 50},
    "dee": {"email": "dee@acme.test", "name": "Dee", "city": "Oakland", "plan": "free", "age": 29},
}
MEMBERS = {"ada", "cy"}
FILTER: Any = {
    "operator": "AND",
    "filters": [
        {"operator": "EQ", "path": "city", "value": "Oakland"},
        {
            "operator": "OR",
            "filters": [
                {"operator": "EQ", "path": "plan", "value": "pro"},
                {"operator": "GT", "path": "age", "value": "40"},
            ],
        },
    ],
}


def test_every_member_and_no_one_else_gets_their_own_message(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    client = tidings_with_mailgun.courier()
    for user_id, profile in PEOPLE.items():
        client.profiles.replace(user_id, profile=profile)
    client.audiences.update("oakland-vips", name="Oakland VIPs", filter=FILTER)
    listed = client.audiences.list_members("oakland-vips")
    assert sorted(i.member_id for i in listed.items) == sorted(MEMBERS)

    answer = client.send.message(
        message={
            "to": {"audience_id": "oakland-vips"},
            "content": {"title": "Hi {{profile.name}}", "body": "News for {{profile.city}}."},
        }
    )

    deadline = time.monotonic() + 30
    rows: list[dict[str, Any]] = []
    with tidings_with_mailgun.http() as http:
        while time.monotonic() < deadline:
            results = http.get("/messages", params={"limit": 100}).json()["results"]
            rows = [r for r in results if r["requestId"] == answer.request_id]
            if len(rows) >= len(MEMBERS) and all(
                r["status"] in ("SENT", "DELIVERED") for r in rows
            ):
                break
            time.sleep(0.05)
    assert len(rows) == len(MEMBERS), rows
    assert all(r["status"] in ("SENT", "DELIVERED") for r in rows), rows
    assert sorted(r["recipient"] for r in rows) == sorted(MEMBERS)  # each a user_id recipient

    copies: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        copies = mailgun_sandbox.messages()
        if len(copies) >= len(MEMBERS):
            break
        time.sleep(0.05)
    to = sorted(address for copy in copies for address in copy["to"])
    assert to == sorted(PEOPLE[m]["email"] for m in MEMBERS)  # one each, no one else
    for copy in copies:
        member = next(m for m in MEMBERS if PEOPLE[m]["email"] in copy["to"])
        assert copy["subject"] == f"Hi {PEOPLE[member]['name']}"
        assert "News for Oakland." in copy["text"]
    for row in rows:
        delivered = tidings_with_mailgun.wait_status(row["id"], "DELIVERED")
        assert delivered["status"] == "DELIVERED", delivered
