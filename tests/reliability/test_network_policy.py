"""Keys stay with their hosts, and API-given targets never reach loopback, link-local or
private addresses: tried from outside against a real Tidings server, a real Mailgun sandbox,
a capturing HTTP server on loopback (the "internal service") and a loopback DNS server whose
answers change (DNS rebinding).

Each test prints a table of target → result for docs/RELIABILITY.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.e2e.conftest import (
    RunningSandbox,
    RunningTidings,
    mailgun_sandbox,
    start_tidings,
)
from tests.support.dns_server import LoopbackDns, serve_dns
from tests.support.servers import serve_asgi

__all__ = ["mailgun_sandbox", "start_tidings"]

OVERRIDE = "message.providers.mailgun.override.config"
# What the internal service answers: at most a short excerpt may come back through Tidings,
# never its markup and never what lies beyond the excerpt.
BEYOND = "AWS_SECRET_ACCESS_KEY=internal-secret-value"
INTERNAL_BODY = (
    "<html><head><script>leak()</script></head><body><h1>Internal admin</h1><p>"
    + "x" * 300
    + f"</p><p>{BEYOND}</p></body></html>"
)
PUBLIC_LOOKING = "93.184.216.34"
REBIND_NAME = "rebind.tidings.test"


@dataclass
class Capture:
    """An HTTP server on loopback that records every request and answers 500 with a page."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> Callable[..., Any]:
        async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return
            more = True
            while more:
                message = await receive()
                more = message.get("more_body", False)
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            self.requests.append({"path": scope["path"], "headers": headers})
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"text/html")],
                }
            )
            await send({"type": "http.response.body", "body": INTERNAL_BODY.encode()})

        return asgi

    @property
    def authorizations(self) -> list[str]:
        return [r["headers"]["authorization"] for r in self.requests if "authorization" in r]


@pytest.fixture
def capture() -> Iterator[Capture]:
    target = Capture()
    with serve_asgi(target.app()) as url:
        target.url = url
        yield target


@pytest.fixture
def dns() -> Iterator[LoopbackDns]:
    with serve_dns({(REBIND_NAME, "A"): [PUBLIC_LOOKING]}) as server:
        yield server


def table(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(target) for target, _ in rows)
    print(f"\n{title}")
    print(f"  {'target'.ljust(width)}  result")
    for target, result in rows:
        print(f"  {target.ljust(width)}  {result}")


def message(**override_config: Any) -> dict[str, Any]:
    return {
        "message": {
            "to": {"email": "someone@example.test"},
            "content": {"title": "Hi", "body": "there"},
            "providers": {"mailgun": {"override": {"config": override_config}}},
        }
    }


def wait_until(predicate: Callable[[], bool], timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_override_host_without_its_own_key_is_refused(
    start_tidings: Callable[..., RunningTidings],
    mailgun_sandbox: RunningSandbox,
    capture: Capture,
) -> None:
    server = start_tidings()  # the sandbox is in TIDINGS_PROVIDER_HOSTS, the capture is not
    server.add_provider(mailgun_sandbox, alias="main")
    rows: list[tuple[str, str]] = []
    tries = [
        (f"{capture.url} (no apiKey)", {"host": capture.url}),
        (f"{capture.url} (own apiKey)", {"host": capture.url, "apiKey": "key-mine-00000000"}),
        ("api.eu.mailgun.net (no apiKey)", {"host": "api.eu.mailgun.net"}),
        ("https://api.mailgun.net (no apiKey)", {"host": "https://api.mailgun.net"}),
        ("http://2130706433/ (no apiKey)", {"host": "http://2130706433/"}),
        ("proxyUrl http://127.0.0.1:3128", {"proxyUrl": "http://127.0.0.1:3128"}),
    ]
    with server.http() as http:
        for label, config in tries:
            answer = http.post("/send", json=message(**config))
            body = answer.json()
            assert answer.status_code == 400, (label, answer.text)
            assert body["type"] == "invalid_request_error"
            assert body["message"].startswith(OVERRIDE + "."), body
            rows.append((label, f"{answer.status_code}: {body['message'][:90]}…"))
        # The stored host itself, without a key: the stored key may go there.
        same = http.post("/send", json=message(host=mailgun_sandbox.url))
        assert same.status_code == 202, same.text
        rows.append((f"{mailgun_sandbox.url} (= stored host)", "202, sent with the stored key"))
    sent = server.wait_status(same.json()["requestId"], "SENT", "DELIVERED")
    assert sent["status"] in ("SENT", "DELIVERED")
    table("override.config targets at /send", rows)
    assert capture.requests == []  # never called, so never given any Authorization header


def test_a_stored_key_never_follows_an_override_at_send_time(
    start_tidings: Callable[..., RunningTidings],
    mailgun_sandbox: RunningSandbox,
    capture: Capture,
) -> None:
    """Accepted at /send (the override named the stored host), then the configuration moves:
    at send time the override names another host than the stored one, and brings no key."""
    server = start_tidings(provider_hosts=capture.url)
    # Polling off: the capture server, once the stored host, would be polled with the key.
    stored = server.add_provider(mailgun_sandbox, alias="main", polling="off")
    with server.http() as http:
        payload = message(host=mailgun_sandbox.url)
        payload["message"]["delay"] = {"duration": 1500}
        answer = http.post("/send", json=payload)
        assert answer.status_code == 202, answer.text
        moved = http.patch(f"/providers/{stored['id']}", json={"settings": {"host": capture.url}})
        assert moved.status_code == 200, moved.text
    request_id = answer.json()["requestId"]
    details = server.wait_status(request_id, "UNDELIVERABLE", "SENT", "DELIVERED")
    assert details["status"] == "UNDELIVERABLE", details
    reasons = [str(entry) for entry in server.history(request_id)]
    assert any(f"{OVERRIDE}.host" in r and "apiKey" in r for r in reasons), reasons
    table(
        "override of a moved configuration, at send time",
        [(mailgun_sandbox.url, "UNDELIVERABLE: override host differs, no apiKey; not called")],
    )
    assert mailgun_sandbox.messages() == []
    assert capture.authorizations == []


def test_api_given_targets_on_internal_addresses_are_refused(
    start_tidings: Callable[..., RunningTidings],
    mailgun_sandbox: RunningSandbox,
    capture: Capture,
    dns: LoopbackDns,
) -> None:
    server = start_tidings(dns_server=dns.address)
    dns.serve({(REBIND_NAME, "A"): ["127.0.0.1"], ("meta.tidings.test", "A"): ["169.254.169.254"]})
    port = capture.url.rsplit(":", 1)[1]
    targets = [
        "http://169.254.169.254/latest/meta-data/",
        f"{capture.url}/hook",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://0177.0.0.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::1]/",
        "http://[fe80::1]/",
        "http://localhost/",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.0.1/",
        "http://100.64.0.1/",
        "http://[fd00::1]/",
        "http://224.0.0.1/",
        "http://0.0.0.0/",
        f"http://{REBIND_NAME}:{port}/",
        "http://meta.tidings.test/",
    ]
    rows: list[tuple[str, str]] = []
    with server.http() as http:
        for url in targets:
            answer = http.post("/webhooks/endpoints", json={"url": url})
            assert answer.status_code == 400, (url, answer.text)
            assert answer.json()["message"].startswith("url "), answer.text
            rows.append((f"webhook {url}", f"400: {answer.json()['message'][:70]}…"))
        for name, value in (
            ("host", capture.url),
            ("host", f"http://{REBIND_NAME}:{port}"),
            ("proxy_url", "http://127.0.0.1:3128"),
            ("proxy_url", "socks5://[::ffff:10.0.0.1]:1080"),
        ):
            answer = http.post(
                "/providers",
                json={
                    "provider": "mailgun",
                    "settings": {
                        "api_key": "key-0000000000000",
                        "domain": "mg.tidings.test",
                        name: value,
                    },
                },
            )
            assert answer.status_code == 400, (name, value, answer.text)
            assert answer.json()["message"].startswith(f"settings.{name} "), answer.text
            rows.append((f"provider {name} {value}", f"400: {answer.json()['message'][:60]}…"))
        public = http.post("/webhooks/endpoints", json={"url": f"http://{PUBLIC_LOOKING}/hook"})
        assert public.status_code == 200, public.text
        rows.append((f"webhook http://{PUBLIC_LOOKING}/hook", "200 (public)"))
    table("targets given through the API", rows)
    assert capture.requests == []


def test_dns_rebinding_is_refused_at_connect_time(
    start_tidings: Callable[..., RunningTidings],
    capture: Capture,
    dns: LoopbackDns,
) -> None:
    """A name that resolves to a public address when the configuration is created and to
    127.0.0.1 when the message is sent: the connection is refused on the resolved address."""
    server = start_tidings(dns_server=dns.address)
    port = capture.url.rsplit(":", 1)[1]
    host = f"http://{REBIND_NAME}:{port}"
    with server.http() as http:
        created = http.post(
            "/providers",
            json={
                "provider": "mailgun",
                "settings": {
                    "api_key": "key-stored-secret-0000",
                    "domain": "mg.tidings.test",
                    "host": host,
                    "polling": "off",
                },
            },
        )
        assert created.status_code == 200, created.text
        dns.serve({(REBIND_NAME, "A"): ["127.0.0.1"]})  # rebinding
        answer = http.post(
            "/send",
            json={"message": {"to": {"email": "a@example.test"}, "content": {"body": "hi"}}},
        )
        assert answer.status_code == 202, answer.text
    request_id = answer.json()["requestId"]
    details = server.wait_status(request_id, "UNDELIVERABLE", "SENT")
    assert details["status"] == "UNDELIVERABLE", details
    history = " ".join(str(entry) for entry in server.history(request_id))
    assert "refused by the outbound network policy" in history
    assert f"{REBIND_NAME} resolves to 127.0.0.1 (loopback)" in history
    assert (REBIND_NAME, "A") in dns.questions
    table(
        "DNS rebinding",
        [
            (f"{host} at creation ({PUBLIC_LOOKING})", "200 created"),
            (f"{host} at send time (127.0.0.1)", "UNDELIVERABLE: refused at connect time"),
        ],
    )
    assert capture.requests == []  # no connection, no key


def test_doctor_refuses_a_loopback_host_and_never_echoes_a_body(
    start_tidings: Callable[..., RunningTidings], capture: Capture
) -> None:
    """A configuration on loopback made while private networks were allowed, then the
    operator turned that off: the doctor says the route is refused and calls nothing. With
    private networks allowed, what the host answers is shown only as a short excerpt."""
    opened = start_tidings(run_workers=False, allow_private_networks=True)
    with opened.http() as http:
        created = http.post(
            "/providers",
            json={
                "provider": "mailgun",
                "settings": {
                    "api_key": "key-stored-secret-0000",
                    "domain": "mg.tidings.test",
                    "host": capture.url,
                },
            },
        )
        assert created.status_code == 200, created.text
        provider_id = created.json()["id"]
        allowed = http.get(f"/providers/{provider_id}/doctor", timeout=60)
    assert allowed.status_code == 200, allowed.text
    api = next(c for c in allowed.json()["checks"] if c["name"] == "mailgun_api")
    assert api["status"] == "fail"
    assert BEYOND not in allowed.text and "<h1>" not in allowed.text
    assert "leak()" not in allowed.text
    assert "Internal admin xxx" in api["detail"]  # the excerpt, and no more
    assert len(api["detail"]) < 400
    called = len(capture.requests)
    assert called >= 1

    strict = start_tidings(run_workers=False)  # same database, private networks off
    with strict.http() as http:
        refused = http.get(f"/providers/{provider_id}/doctor", timeout=60)
    assert refused.status_code == 200, refused.text
    checks = {c["name"]: c for c in refused.json()["checks"]}
    assert checks["network_route"]["status"] == "fail"
    assert "refused by the outbound network policy" in checks["network_route"]["detail"]
    assert checks["mailgun_api"]["status"] == "fail"
    assert BEYOND not in refused.text and "Internal admin" not in refused.text
    assert len(capture.requests) == called  # nothing more was called
    table(
        "doctor on a loopback provider host",
        [
            (f"{capture.url}, private allowed", f"called; detail: {api['detail'][:80]}…"),
            (f"{capture.url}, policy on", "network_route fail: refused; not called"),
        ],
    )


def test_status_webhook_last_error_is_a_short_excerpt(
    start_tidings: Callable[..., RunningTidings],
    mailgun_sandbox: RunningSandbox,
    capture: Capture,
) -> None:
    server = start_tidings(
        allow_private_networks=True,  # the receiver is on loopback
        notify_retry_base_s=0.05,
        notify_retry_max_s=0.2,
    )
    server.add_provider(mailgun_sandbox, alias="main")
    with server.http() as http:
        endpoint = http.post("/webhooks/endpoints", json={"url": f"{capture.url}/hook"}).json()
        sent = http.post(
            "/send",
            json={"message": {"to": {"email": "a@example.test"}, "content": {"body": "hi"}}},
        ).json()["requestId"]

        def failed_once() -> bool:
            rows = http.get(f"/webhooks/endpoints/{endpoint['id']}/deliveries").json()
            return any(r["lastError"] for r in rows["results"])

        assert wait_until(failed_once)
        rows = http.get(f"/webhooks/endpoints/{endpoint['id']}/deliveries").json()["results"]
    errors = [r["lastError"] for r in rows if r["lastError"]]
    assert sent
    for error in errors:
        assert error.startswith("HTTP 500: Internal admin xxx")
        assert len(error) <= len("HTTP 500: ") + 200
        assert "<" not in error and "leak()" not in error and BEYOND not in error
    table("status webhook lastError", [(f"{capture.url}/hook", errors[0])])


def test_attempt_history_keeps_only_an_excerpt_of_a_foreign_hosts_answer(
    start_tidings: Callable[..., RunningTidings], capture: Capture
) -> None:
    """A host that is not Mailgun's (here allowed as the operator's own) answers 500 with a
    page: the attempt history keeps its status and a short excerpt, not the page."""
    server = start_tidings(provider_hosts=capture.url)
    with server.http() as http:
        created = http.post(
            "/providers",
            json={
                "provider": "mailgun",
                "settings": {
                    "api_key": "key-stored-secret-0000",
                    "domain": "mg.tidings.test",
                    "host": capture.url,
                    "polling": "off",
                },
            },
        )
        assert created.status_code == 200, created.text
        request_id = http.post(
            "/send",
            json={"message": {"to": {"email": "a@example.test"}, "content": {"body": "hi"}}},
        ).json()["requestId"]

    def answers() -> list[dict[str, Any]]:
        return [
            entry["response"]
            for entry in server.history(request_id)
            if isinstance(entry.get("response"), dict)
        ]

    assert wait_until(lambda: bool(answers()))
    first = answers()[0]
    assert first["status"] == 500
    body = str(first["body"])
    assert body.startswith("Internal admin xxx") and len(body) <= 200
    assert "<" not in body and "leak()" not in body and BEYOND not in body
    history = str(server.history(request_id))
    assert BEYOND not in history and "<h1>" not in history
    table("attempt history of a foreign host", [(capture.url, f"500, body: {body[:60]}…")])


def test_status_webhook_rebinding_is_refused_at_connect_time(
    start_tidings: Callable[..., RunningTidings],
    mailgun_sandbox: RunningSandbox,
    capture: Capture,
    dns: LoopbackDns,
) -> None:
    """The notifier's session is guarded too: an endpoint whose name moves to 127.0.0.1
    after it was registered gets nothing, and its lastError says why."""
    server = start_tidings(dns_server=dns.address, notify_retry_base_s=0.05)
    server.add_provider(mailgun_sandbox, alias="main")
    port = capture.url.rsplit(":", 1)[1]
    url = f"http://{REBIND_NAME}:{port}/hook"
    with server.http() as http:
        endpoint = http.post("/webhooks/endpoints", json={"url": url})
        assert endpoint.status_code == 200, endpoint.text
        dns.serve({(REBIND_NAME, "A"): ["127.0.0.1"]})
        http.post(
            "/send",
            json={"message": {"to": {"email": "a@example.test"}, "content": {"body": "hi"}}},
        ).raise_for_status()

        def errors() -> list[str]:
            rows = http.get(f"/webhooks/endpoints/{endpoint.json()['id']}/deliveries").json()
            return [r["lastError"] for r in rows["results"] if r["lastError"]]

        assert wait_until(lambda: bool(errors()))
        error = errors()[0]
    assert "refused by the outbound network policy" in error, error
    assert capture.requests == []
    table("status webhook, DNS rebinding", [(url, error[:110] + "…")])
