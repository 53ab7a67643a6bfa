"""The sandbox's suppressions API (bounces, unsubscribes, complaints, allowlist) driven with
Mailgun's official SDK, sync and async clients, and the rules they impose on later sends."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import requests
from mailgun.client import AsyncClient, Client
from mailgun.config import RetryPolicy

from tests.sandbox.conftest import DOMAIN, KEY, Running, basic_message, send, wait_until

JSON_HEADERS = {"Content-Type": "application/json"}


def _failed_code(client: Client, recipient: str) -> int:
    """The delivery-status code of the first failed event for ``recipient``."""

    def found() -> Any:
        items = client.events.get(
            domain=DOMAIN, filters={"event": "failed", "recipient": recipient}
        ).json()["items"]
        return items[0] if items else None

    return int(wait_until(found)["delivery-status"]["code"])


def _walk(client: Client, resource: Any, limit: int) -> list[str]:
    """Every address of a list, following ``paging.next`` until a page is empty."""
    page = resource.get(domain=DOMAIN, filters={"limit": limit}).json()
    seen: list[str] = []
    while page["items"]:
        seen += [item.get("address") or item["value"] for item in page["items"]]
        page = requests.get(page["paging"]["next"], auth=("api", KEY), timeout=10).json()
    return seen


# -- bounces --------------------------------------------------------------------------------


def test_bounces_add_get_list_delete(client: Client) -> None:
    added = client.bounces.create(
        domain=DOMAIN, data={"address": "Ann@Example.test", "code": 550, "error": "No such"}
    )
    assert added.status_code == 200
    assert added.json() == {
        "message": "Address has been added to the bounces table",
        "address": "ann@example.test",
    }
    one = client.bounces.get(domain=DOMAIN, bounce_address="ann@example.test")
    assert one.status_code == 200
    body = one.json()
    assert body["address"] == "ann@example.test" and body["code"] == "550"
    assert body["error"] == "No such" and body["created_at"].endswith("UTC")

    many = client.bounces.create(
        domain=DOMAIN,
        data=[{"address": "bob@example.test", "code": "551"}, {"address": "cy@example.test"}],
        headers=JSON_HEADERS,
    )
    assert many.json() == {"message": "2 addresses have been added to the bounces table"}

    listed = client.bounces.get(domain=DOMAIN).json()
    assert [item["address"] for item in listed["items"]] == [
        "ann@example.test",
        "bob@example.test",
        "cy@example.test",
    ]
    assert set(listed["paging"]) == {"first", "last", "next", "previous"}

    gone = client.bounces.delete(domain=DOMAIN, bounce_address="bob@example.test")
    assert gone.status_code == 200
    assert gone.json()["message"] == "Bounced address has been removed"
    missing = client.bounces.get(domain=DOMAIN, bounce_address="bob@example.test")
    assert missing.status_code == 404
    assert missing.json() == {"message": "Address not found in bounces table"}

    cleared = client.bounces.delete(domain=DOMAIN)
    assert cleared.json() == {"message": "Bounced addresses for this domain have been removed"}
    assert client.bounces.get(domain=DOMAIN).json()["items"] == []


def test_list_pages_with_mailgun_paging_urls(client: Client) -> None:
    addresses = [f"user{n:02}@example.test" for n in range(7)]
    client.bounces.create(
        domain=DOMAIN, data=[{"address": a} for a in addresses], headers=JSON_HEADERS
    )
    assert _walk(client, client.bounces, limit=3) == addresses
    first = client.bounces.get(domain=DOMAIN, filters={"limit": 3}).json()
    assert "page=next" in first["paging"]["next"]
    assert "address=user02%40example.test" in first["paging"]["next"]
    last = requests.get(first["paging"]["last"], auth=("api", KEY), timeout=10).json()
    assert [item["address"] for item in last["items"]] == addresses[-3:]
    term = client.bounces.get(domain=DOMAIN, filters={"term": "user0"}).json()
    assert len(term["items"]) == 7


def test_bounce_import_from_csv(client: Client) -> None:
    csv = b"address,code,error,created_at\nx@example.test,551,full,Thu, 13 Oct 2011 18:02:00 UTC\n"
    # A created_at with commas must be quoted in CSV; this row is not, so it is refused.
    refused = client.bounces_import.create(domain=DOMAIN, files={"file": csv})
    assert refused.status_code == 400
    good = (
        b'address,code,error,created_at\nx@example.test,551,full,"Thu, 13 Oct 2011 18:02:00 UTC"\n'
    )
    answer = client.bounces_import.create(domain=DOMAIN, files={"file": good})
    assert answer.status_code == 202
    assert answer.json() == {"message": "file uploaded successfully for processing. standby..."}
    item = client.bounces.get(domain=DOMAIN, bounce_address="x@example.test").json()
    assert item["code"] == "551" and item["created_at"] == "Thu, 13 Oct 2011 18:02:00 UTC"


def test_bad_input_is_refused_with_mailgun_errors(client: Client) -> None:
    assert client.bounces.create(domain=DOMAIN, data={"code": 550}).json() == {
        "message": "'address' parameter is missing"
    }
    assert client.bounces.create(domain=DOMAIN, data={"address": "nope"}).status_code == 400
    too_big = client.bounces.get(domain=DOMAIN, filters={"limit": 5000})
    assert too_big.status_code == 400 and "limit" in too_big.json()["message"]
    other = client.bounces.get(domain="unknown.test")
    assert other.status_code == 404
    assert other.json() == {"message": "Domain not found: unknown.test"}
    with Client(auth=("api", "wrong"), api_url=client.config.api_url) as bad:
        assert bad.bounces.get(domain=DOMAIN).status_code == 401


# -- unsubscribes, complaints, allowlist ------------------------------------------------------


def test_unsubscribes_per_tag(client: Client) -> None:
    client.unsubscribes.create(domain=DOMAIN, data={"address": "u@example.test", "tag": "news"})
    client.unsubscribes.create(domain=DOMAIN, data={"address": "u@example.test", "tag": "promo"})
    item = client.unsubscribes.get(domain=DOMAIN, unsubscribe_address="u@example.test").json()
    assert item["tags"] == ["news", "promo"]
    many = client.unsubscribes.create(
        domain=DOMAIN,
        data=[{"address": "all@example.test", "tags": ["*"]}, {"address": "v@example.test"}],
        headers=JSON_HEADERS,
    )
    assert many.json() == {"message": "2 addresses have been added to the unsubscribes table"}
    assert client.unsubscribes.get(domain=DOMAIN, unsubscribe_address="v@example.test").json()[
        "tags"
    ] == ["*"]
    one_tag = client.unsubscribes.delete(
        domain=DOMAIN, unsubscribe_address="u@example.test", filters={"tag": "news"}
    )
    assert one_tag.json()["message"] == "Unsubscribe event has been removed"
    item = client.unsubscribes.get(domain=DOMAIN, unsubscribe_address="u@example.test").json()
    assert item["tags"] == ["promo"]
    imported = client.unsubscribes_import.create(
        domain=DOMAIN, files={"unsubscribe_csv": b"address,tags\nw@example.test,*\n"}
    )
    assert imported.status_code == 202
    assert _walk(client, client.unsubscribes, limit=2) == [
        "all@example.test",
        "u@example.test",
        "v@example.test",
        "w@example.test",
    ]
    missing = client.unsubscribes.get(domain=DOMAIN, unsubscribe_address="zz@example.test")
    assert missing.json() == {"message": "Address not found in unsubscribers table"}


def test_complaints(client: Client) -> None:
    added = client.complaints.create(domain=DOMAIN, data={"address": "c@example.test"})
    assert added.json()["address"] == "c@example.test"
    client.complaints_import.create(
        domain=DOMAIN, files={"complaints_csv": b"address\nd@example.test\n"}
    )
    assert _walk(client, client.complaints, limit=1) == ["c@example.test", "d@example.test"]
    removed = client.complaints.delete(domain=DOMAIN, complaint_address="c@example.test")
    assert removed.json()["message"] == "Spam complaint has been removed"
    missing = client.complaints.get(domain=DOMAIN, complaint_address="c@example.test")
    assert missing.json() == {"message": "No spam complaints found for this address"}
    assert client.complaints.delete(domain=DOMAIN).status_code == 200
    assert client.complaints.get(domain=DOMAIN).json()["items"] == []


def test_allowlist(client: Client) -> None:
    by_address = client.whitelists.create(domain=DOMAIN, data={"address": "ok@example.test"})
    assert by_address.json()["type"] == "address"
    by_domain = client.whitelists.create(domain=DOMAIN, data={"domain": "trusted.test"})
    assert by_domain.json()["value"] == "trusted.test"
    item = client.whitelists.get(domain=DOMAIN, whitelist_address="trusted.test").json()
    assert item["type"] == "domain" and "createdAt" in item
    client.whitelists_import.create(
        domain=DOMAIN, files={"whitelist_csv": b"address,domain\n,other.test\n"}
    )
    assert _walk(client, client.whitelists, limit=2) == [
        "ok@example.test",
        "other.test",
        "trusted.test",
    ]
    assert client.whitelists.delete(domain=DOMAIN, whitelist_address="other.test").ok
    assert client.whitelists.delete(domain=DOMAIN).ok


# -- what the lists do to sends ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("add", "code"),
    [
        (lambda c, a: c.bounces.create(domain=DOMAIN, data={"address": a}), 605),
        (lambda c, a: c.unsubscribes.create(domain=DOMAIN, data={"address": a}), 606),
        (lambda c, a: c.complaints.create(domain=DOMAIN, data={"address": a}), 607),
    ],
)
def test_a_listed_address_is_not_sent_to(
    running: Running, client: Client, add: Callable[[Client, str], Any], code: int
) -> None:
    add(client, "held@example.test")
    send(running.base, basic_message(to="held@example.test"))
    assert _failed_code(client, "held@example.test") == code


def test_unsubscribed_from_one_tag_still_gets_other_mail(running: Running, client: Client) -> None:
    client.unsubscribes.create(domain=DOMAIN, data={"address": "t@example.test", "tag": "news"})
    send(running.base, basic_message(to="t@example.test", **{"o:tag": "receipts"}))
    wait_until(
        lambda: client.events.get(
            domain=DOMAIN, filters={"event": "delivered", "recipient": "t@example.test"}
        ).json()["items"]
    )
    send(running.base, basic_message(to="t@example.test", **{"o:tag": "news"}))
    assert _failed_code(client, "t@example.test") == 606


def test_events_put_addresses_on_the_lists(running: Running, client: Client) -> None:
    send(running.base, basic_message(to="gone+bounce@example.test"))
    send(running.base, basic_message(to="spam+complain@example.test"))
    send(running.base, basic_message(to="bye+unsubscribe@example.test"))
    wait_until(lambda: client.bounces.get(domain=DOMAIN).json()["items"])
    wait_until(lambda: client.complaints.get(domain=DOMAIN).json()["items"])
    wait_until(lambda: client.unsubscribes.get(domain=DOMAIN).json()["items"])
    unsubscribed = client.unsubscribes.get(
        domain=DOMAIN, unsubscribe_address="bye+unsubscribe@example.test"
    ).json()
    assert unsubscribed["tags"] == ["*"]


def test_an_allowlisted_address_is_never_suppressed(running: Running, client: Client) -> None:
    client.whitelists.create(domain=DOMAIN, data={"domain": "example.test"})
    send(running.base, basic_message(to="gone+bounce@example.test"))
    # The hard bounce happens, but the address is not put on the bounce list ...
    assert _failed_code(client, "gone+bounce@example.test") == 550
    assert client.bounces.get(domain=DOMAIN).json()["items"] == []
    # ... and even a listed address is sent to while its domain is allowlisted.
    client.complaints.create(domain=DOMAIN, data={"address": "c@example.test"})
    send(running.base, basic_message(to="c@example.test"))
    wait_until(
        lambda: client.events.get(
            domain=DOMAIN, filters={"event": "delivered", "recipient": "c@example.test"}
        ).json()["items"]
    )


def test_deleting_a_bounce_lets_mail_through_again(running: Running, client: Client) -> None:
    client.bounces.create(domain=DOMAIN, data={"address": "back@example.test"})
    client.bounces.delete(domain=DOMAIN, bounce_address="back@example.test")
    send(running.base, basic_message(to="back@example.test"))
    wait_until(
        lambda: client.events.get(
            domain=DOMAIN, filters={"event": "delivered", "recipient": "back@example.test"}
        ).json()["items"]
    )


# -- the async client ---------------------------------------------------------------------------


def test_async_client_resource_by_resource(running: Running) -> None:
    async def scenario() -> None:
        async with AsyncClient(
            auth=("api", KEY), api_url=running.base, retry_policy=RetryPolicy(max_retries=0)
        ) as client:
            for resource, key, extra in (
                (client.bounces, "bounce_address", {"code": 550}),
                (client.unsubscribes, "unsubscribe_address", {"tag": "*"}),
                (client.complaints, "complaint_address", {}),
                (client.whitelists, "whitelist_address", {}),
            ):
                added = await resource.create(
                    domain=DOMAIN, data={"address": "a@example.test", **extra}
                )
                assert added.status_code == 200, added.text
                listed = await resource.get(domain=DOMAIN)
                assert len(listed.json()["items"]) == 1
                one = await resource.get(domain=DOMAIN, **{key: "a@example.test"})
                assert one.status_code == 200
                gone = await resource.delete(domain=DOMAIN, **{key: "a@example.test"})
                assert gone.status_code == 200
                missing = await resource.get(domain=DOMAIN, **{key: "a@example.test"})
                assert missing.status_code == 404 and "message" in missing.json()
            imported = await client.bounces_import.create(
                domain=DOMAIN, files={"file": b"address\nz@example.test\n"}
            )
            assert imported.status_code == 202
            assert (await client.bounces.delete(domain=DOMAIN)).status_code == 200

    asyncio.run(scenario())


# -- every other route ---------------------------------------------------------------------------


def test_unserved_routes_answer_json_404_and_405(running: Running, client: Client) -> None:
    unknown = requests.get(
        f"{running.base}/v3/{DOMAIN}/no-such-resource", auth=("api", KEY), timeout=10
    )
    assert unknown.status_code == 404
    assert unknown.json() == {"message": "Not Found"}
    wrong_method = requests.put(
        f"{running.base}/v3/{DOMAIN}/bounces", auth=("api", KEY), timeout=10
    )
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"].startswith("application/json")
    assert "PUT" in wrong_method.json()["message"]
