"""MailgunClient against a small Mailgun look-alike served on loopback by uvicorn.

The look-alike answers by domain: ``mg.example.com`` accepts, ``missing.example.com`` is 404,
``throttled`` 429 with Retry-After, ``probation`` 420 with "try again after", ``broken``
500, ``drop`` reads the whole body and closes the connection, ``slow`` answers too late.
Every request it receives is recorded with its raw body, so the tests check what went over
the wire, not what the client meant to send.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.providers.mailgun.fixtures import API_KEY, SIGNING_KEY, make_config
from tests.support.servers import free_port, serve_asgi
from tidings.providers.base import Attachment, OutcomeKind, OutgoingEmail
from tidings.providers.mailgun.client import MailgunClient, Timeouts, WebhookInfo
from tidings.providers.mailgun.errors import (
    MailgunAPIError,
    MailgunConfigError,
    MailgunConnectionError,
)

THROTTLE_UNTIL = "Mon, 25 Aug 2025 07:00:31 UTC"
AUTH = "Basic " + base64.b64encode(f"api:{API_KEY}".encode()).decode()


@dataclass
class Seen:
    """One request as the look-alike received it."""

    method: str
    path: str
    host: str
    headers: dict[str, str]
    body: bytes
    fields: list[tuple[str, str]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    query: list[tuple[str, str]] = field(default_factory=list)
    client_port: int | None = None


@dataclass
class Lookalike:
    url: str
    seen: list[Seen]
    webhooks: dict[str, list[str]]


async def _record(request: Request, seen: list[Seen]) -> Seen:
    body = await request.body()
    entry = Seen(
        method=request.method,
        path=request.url.path,
        host=request.headers.get("host", ""),
        headers=dict(request.headers),
        body=body,
        query=list(request.query_params.multi_items()),
        client_port=request.client.port if request.client else None,
    )
    if request.method in ("POST", "PUT"):
        form = await request.form()
        for name, value in form.multi_items():
            if isinstance(value, str):
                entry.fields.append((name, value))
            else:
                data = await value.read()
                entry.files.append(
                    {
                        "field": name,
                        "filename": value.filename,
                        "content_type": value.content_type,
                        "sha256": hashlib.sha256(data).hexdigest(),
                    }
                )
    seen.append(entry)
    return entry


def build_app(seen: list[Seen], webhooks: dict[str, list[str]]) -> Starlette:
    def authorized(request: Request) -> bool:
        return request.headers.get("authorization") == AUTH

    async def messages(request: Request) -> Response:
        await _record(request, seen)
        domain = request.path_params["domain"]
        if not authorized(request):
            return PlainTextResponse("Forbidden", status_code=401)
        if domain == "missing.example.com":
            return JSONResponse({"message": f"Domain not found: {domain}"}, status_code=404)
        if domain == "throttled.example.com":
            return JSONResponse(
                {"message": "Too many requests"}, status_code=429, headers={"Retry-After": "120"}
            )
        if domain == "probation.example.com":
            text = (
                f"Domain {domain} is not allowed to send: recipient limit exceeded, "
                f"try again after {THROTTLE_UNTIL}"
            )
            return JSONResponse({"message": text}, status_code=420)
        if domain == "broken.example.com":
            return JSONResponse({"message": "Internal Server Error"}, status_code=500)
        if domain == "drop.example.com":
            # The whole body was read above; now hang up without answering.
            request.receive.__self__.transport.close()  # type: ignore[attr-defined]
            return Response(status_code=200)
        if domain == "slow.example.com":
            await asyncio.sleep(1.0)
        message_id = f"<20260203192638.{len(seen):016x}@{domain}>"
        return JSONResponse({"id": message_id, "message": "Queued. Thank you."})

    async def events(request: Request) -> Response:
        await _record(request, seen)
        if not authorized(request):
            return PlainTextResponse("Forbidden", status_code=401)
        domain = request.path_params["domain"]
        token = request.path_params.get("token")
        base = f"{request.url.scheme}://{request.url.netloc}/v3/{domain}/events"
        items = [] if token else [{"event": "accepted", "id": "e1", "timestamp": 1.5}]
        return JSONResponse(
            {"items": items, "paging": {"next": f"{base}/page2", "previous": f"{base}/page0"}}
        )

    async def domain_info(request: Request) -> Response:
        await _record(request, seen)
        if not authorized(request):
            return PlainTextResponse("Forbidden", status_code=401)
        domain = request.path_params["domain"]
        if domain != "mg.example.com":
            return JSONResponse({"message": "Domain not found"}, status_code=404)
        return JSONResponse({"domain": {"name": domain, "state": "active"}})

    async def webhook_list(request: Request) -> Response:
        entry = await _record(request, seen)
        if not authorized(request):
            return PlainTextResponse("Forbidden", status_code=401)
        if request.path_params["domain"] != "mg.example.com":
            return JSONResponse({"message": "Domain not found"}, status_code=404)
        if request.method == "POST":
            values = dict(entry.fields)
            urls = [value for name, value in entry.fields if name == "url"]
            webhooks[values["id"]] = urls
            return JSONResponse({"message": "Webhook has been created", "webhook": {"urls": urls}})
        return JSONResponse({"webhooks": {k: {"urls": v} for k, v in webhooks.items()}})

    async def webhook_one(request: Request) -> Response:
        entry = await _record(request, seen)
        name = request.path_params["name"]
        if name not in webhooks:
            return JSONResponse({"message": "Webhook not found"}, status_code=404)
        if request.method == "PUT":
            webhooks[name] = [value for key, value in entry.fields if key == "url"]
            return JSONResponse(
                {"message": "Webhook has been updated", "webhook": {"urls": webhooks[name]}}
            )
        urls = webhooks.pop(name)
        return JSONResponse({"message": "Webhook has been deleted", "webhook": {"urls": urls}})

    return Starlette(
        routes=[
            Route("/v3/{domain}/messages", messages, methods=["POST"]),
            Route("/v3/{domain}/events", events, methods=["GET"]),
            Route("/v3/{domain}/events/{token}", events, methods=["GET"]),
            Route("/v3/domains/{domain}", domain_info, methods=["GET"]),
            Route("/v3/domains/{domain}/webhooks", webhook_list, methods=["GET", "POST"]),
            Route("/v3/domains/{domain}/webhooks/{name}", webhook_one, methods=["PUT", "DELETE"]),
        ]
    )


def build_proxy(seen: list[Seen]) -> Starlette:
    """A stand-in for an HTTP forward proxy that answers for the target itself."""

    async def anything(request: Request) -> Response:
        await _record(request, seen)
        return JSONResponse({"id": "<via-proxy@mg.example.com>", "message": "Queued."})

    return Starlette(routes=[Route("/{path:path}", anything, methods=["GET", "POST"])])


@pytest.fixture(scope="module")
def lookalike() -> Iterator[Lookalike]:
    seen: list[Seen] = []
    webhooks: dict[str, list[str]] = {}
    with serve_asgi(build_app(seen, webhooks)) as url:
        yield Lookalike(url, seen, webhooks)


@pytest.fixture
async def client() -> Any:
    client = MailgunClient(timeouts=Timeouts(connect=2.0, read=0.3, total=5.0))
    yield client
    await client.close()


def message(**changes: Any) -> OutgoingEmail:
    values: dict[str, Any] = {
        "tidings_id": "1-abc",
        "from_address": "Acme <no-reply@mg.example.com>",
        "to": "alice@example.com",
        "subject": "Grüße",
        "html": "<p>Hi</p>",
        "text": "Hi",
        "cc": ("c1@example.com", "c2@example.com"),
        "tags": ("invoice", "billing"),
    }
    values.update(changes)
    return OutgoingEmail(**values)


def last(lookalike: Lookalike) -> Seen:
    return lookalike.seen[-1]


async def test_urlencoded_send(lookalike: Lookalike, client: MailgunClient) -> None:
    outcome = await client.send(message(), make_config(lookalike.url))
    assert outcome.kind is OutcomeKind.SENT, outcome
    assert outcome.status_code == 200
    assert outcome.provider_message_id is not None
    assert outcome.provider_message_id.endswith("@mg.example.com")
    assert "<" not in outcome.provider_message_id
    assert outcome.duration_ms > 0
    seen = last(lookalike)
    assert seen.path == "/v3/mg.example.com/messages"
    assert seen.headers["content-type"] == "application/x-www-form-urlencoded"
    assert seen.headers["authorization"] == AUTH
    assert ("v:tidings-id", "1-abc") in seen.fields
    assert [v for k, v in seen.fields if k == "cc"] == ["c1@example.com", "c2@example.com"]
    assert [v for k, v in seen.fields if k == "o:tag"] == ["invoice", "billing"]
    assert ("subject", "Grüße") in seen.fields
    assert outcome.request.fields == seen.fields  # the record is what was sent
    assert API_KEY not in repr(outcome)


async def test_multipart_with_files_byte_exact(lookalike: Lookalike, client: MailgunClient) -> None:
    pdf = Attachment("Rechnung-März.pdf", "application/pdf", bytes(range(256)) * 300)
    logo = Attachment("logo.png", "image/png", b"\x89PNG\r\n\x1a\n\x00\xff", inline=True)
    outcome = await client.send(message(attachments=(pdf, logo)), make_config(lookalike.url))
    assert outcome.kind is OutcomeKind.SENT, outcome
    seen = last(lookalike)
    assert seen.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert seen.files == [
        {
            "field": "attachment",
            "filename": "Rechnung-März.pdf",
            "content_type": "application/pdf",
            "sha256": hashlib.sha256(pdf.data).hexdigest(),
        },
        {
            "field": "inline",
            "filename": "logo.png",
            "content_type": "image/png",
            "sha256": hashlib.sha256(logo.data).hexdigest(),
        },
    ]
    assert 'filename="Rechnung-März.pdf"'.encode() in seen.body  # raw UTF-8, not %-encoded
    assert [v for k, v in seen.fields if k == "o:tag"] == ["invoice", "billing"]
    assert ("v:tidings-id", "1-abc") in seen.fields
    assert [f["sha256"] for f in outcome.request.files] == [f["sha256"] for f in seen.files]


async def test_connections_are_pooled(lookalike: Lookalike, client: MailgunClient) -> None:
    config = make_config(lookalike.url)
    await client.send(message(), config)
    first = last(lookalike).client_port
    await client.send(message(), config)
    assert last(lookalike).client_port == first  # keep-alive: the same connection
    await client.send(message(), make_config(lookalike.url.replace("127.0.0.1", "localhost")))
    assert len(client._sessions) == 2  # one per origin


async def test_wrong_key(lookalike: Lookalike, client: MailgunClient) -> None:
    outcome = await client.send(message(), make_config(lookalike.url, api_key="key-wrong"))
    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.status_code == 401
    assert outcome.response_body == "Forbidden"
    assert outcome.error_message is not None
    assert "wrong API key or wrong region" in outcome.error_message
    assert outcome.hint is not None


@pytest.mark.parametrize(
    ("domain", "kind", "status"),
    [
        ("missing.example.com", OutcomeKind.FAILED, 404),
        ("broken.example.com", OutcomeKind.RETRY, 500),
    ],
)
async def test_error_answers(
    lookalike: Lookalike, client: MailgunClient, domain: str, kind: OutcomeKind, status: int
) -> None:
    outcome = await client.send(message(), make_config(lookalike.url, domain=domain))
    assert (outcome.kind, outcome.status_code) == (kind, status)
    assert outcome.error_message


async def test_throttled_with_retry_after(lookalike: Lookalike, client: MailgunClient) -> None:
    before = datetime.now(UTC)
    config = make_config(lookalike.url, domain="throttled.example.com")
    outcome = await client.send(message(), config)
    assert outcome.kind is OutcomeKind.THROTTLED
    assert outcome.retry_at is not None
    assert before + timedelta(seconds=119) <= outcome.retry_at
    assert outcome.retry_at <= datetime.now(UTC) + timedelta(seconds=121)


async def test_probation_420_until_the_date_given() -> None:
    seen: list[Seen] = []
    fixed_now = datetime(2025, 8, 25, 6, 0, tzinfo=UTC)
    async with MailgunClient(clock=lambda: fixed_now) as client:
        with serve_asgi(build_app(seen, {})) as url:
            config = make_config(url, domain="probation.example.com")
            outcome = await client.send(message(), config)
    assert outcome.kind is OutcomeKind.THROTTLED
    assert outcome.retry_at == datetime(2025, 8, 25, 7, 0, 31, tzinfo=UTC)
    assert outcome.hint is not None and "Business Verification" in outcome.hint


async def test_dropped_after_the_body_is_in_doubt(
    lookalike: Lookalike, client: MailgunClient
) -> None:
    for attachments in ((), (Attachment("a.bin", "application/octet-stream", b"x" * 5000),)):
        config = make_config(lookalike.url, domain="drop.example.com")
        outcome = await client.send(message(attachments=attachments), config)
        assert outcome.kind is OutcomeKind.IN_DOUBT, outcome
        assert outcome.status_code is None
        assert last(lookalike).path == "/v3/drop.example.com/messages"


async def test_read_timeout_is_in_doubt(lookalike: Lookalike, client: MailgunClient) -> None:
    outcome = await client.send(message(), make_config(lookalike.url, domain="slow.example.com"))
    assert outcome.kind is OutcomeKind.IN_DOUBT, outcome


async def test_connection_refused_is_retried(client: MailgunClient) -> None:
    config = make_config(f"http://127.0.0.1:{free_port()}")
    outcome = await client.send(message(), config)
    assert outcome.kind is OutcomeKind.RETRY, outcome
    assert outcome.error_message is not None and "did not arrive" in outcome.error_message


async def test_too_many_tags_fail_without_a_call(
    lookalike: Lookalike, client: MailgunClient
) -> None:
    count = len(lookalike.seen)
    outcome = await client.send(message(tags=("a", "b", "c", "d")), make_config(lookalike.url))
    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.error_message is not None and "at most 3" in outcome.error_message
    assert len(lookalike.seen) == count


async def test_http_proxy_carries_the_call(client: MailgunClient) -> None:
    seen: list[Seen] = []
    with serve_asgi(build_proxy(seen)) as proxy_url:
        proxied = proxy_url.replace("http://", "http://user:s3cret@")
        config = make_config("http://mailgun.invalid", proxy_url=proxied)
        outcome = await client.send(message(), config)
    assert outcome.kind is OutcomeKind.SENT, outcome
    (request,) = seen
    assert request.host == "mailgun.invalid"  # the proxy was asked for Mailgun's host
    expected = "Basic " + base64.b64encode(b"user:s3cret").decode()
    assert request.headers["proxy-authorization"] == expected
    assert request.headers["authorization"] == AUTH
    assert "s3cret" not in repr(outcome)


@pytest.mark.skipif(
    importlib.util.find_spec("aiohttp_socks") is not None, reason="aiohttp-socks is installed"
)
async def test_socks_proxy_without_aiohttp_socks(client: MailgunClient) -> None:
    config = make_config("https://api.mailgun.net", proxy_url="socks5://127.0.0.1:1080")
    outcome = await client.send(message(), config)
    assert outcome.kind is OutcomeKind.RETRY
    assert outcome.error_message is not None
    assert "pip install aiohttp-socks" in outcome.error_message
    with pytest.raises(MailgunConfigError, match="pip install aiohttp-socks"):
        await client.get_domain(config)


async def test_unsupported_proxy_scheme(client: MailgunClient) -> None:
    config = make_config("https://api.mailgun.net", proxy_url="ftp://proxy:21")
    with pytest.raises(MailgunConfigError, match="unsupported scheme 'ftp'"):
        await client.get_domain(config)


async def test_events_paging(lookalike: Lookalike, client: MailgunClient) -> None:
    config = make_config(lookalike.url)
    page = await client.events_page(
        config,
        begin=1700000000.25,
        end=1700000600,
        ascending=True,
        limit=300,
        filters={"event": "accepted OR failed", "recipient": "alice@example.com"},
    )
    assert page.items == [{"event": "accepted", "id": "e1", "timestamp": 1.5}]
    assert page.next_url == f"{lookalike.url}/v3/mg.example.com/events/page2"
    query = dict(last(lookalike).query)
    assert query == {
        "ascending": "yes",
        "limit": "300",
        "begin": "1700000000.25",
        "end": "1700000600",
        "event": "accepted OR failed",
        "recipient": "alice@example.com",
    }
    assert page.next_url is not None
    following = await client.events_next(config, page.next_url)
    assert following.items == []
    with pytest.raises(MailgunConfigError, match="refusing to follow"):
        await client.events_next(config, "https://elsewhere.example/v3/x/events/abc")


async def test_domain_and_errors(lookalike: Lookalike, client: MailgunClient) -> None:
    info = await client.get_domain(make_config(lookalike.url))
    assert (info.name, info.state) == ("mg.example.com", "active")
    with pytest.raises(MailgunAPIError, match="wrong domain or region") as not_found:
        await client.get_domain(make_config(lookalike.url, domain="nope.example.com"))
    assert not_found.value.status_code == 404
    with pytest.raises(MailgunAPIError, match="wrong API key or wrong region"):
        await client.get_domain(make_config(lookalike.url, api_key="key-wrong"))
    with pytest.raises(MailgunConnectionError, match="could not reach Mailgun"):
        await client.get_domain(make_config(f"http://127.0.0.1:{free_port()}"))


async def test_webhooks_api(lookalike: Lookalike, client: MailgunClient) -> None:
    config = make_config(lookalike.url)
    hook = "https://tidings.example.com/webhooks/mailgun/abc"
    created = await client.create_webhook(config, "delivered", [hook, f"{hook}?2"])
    assert created == WebhookInfo("delivered", (hook, f"{hook}?2"))
    assert last(lookalike).fields == [("id", "delivered"), ("url", hook), ("url", f"{hook}?2")]
    assert await client.list_webhooks(config) == [created]
    updated = await client.update_webhook(config, "delivered", [hook])
    assert updated.urls == (hook,)
    await client.delete_webhook(config, "delivered")
    assert await client.list_webhooks(config) == []
    with pytest.raises(MailgunAPIError, match="no 'opened' webhook"):
        await client.delete_webhook(config, "opened")
    with pytest.raises(MailgunAPIError, match="wrong domain or region"):
        await client.list_webhooks(make_config(lookalike.url, domain="nope.example.com"))


async def test_no_secret_in_records(lookalike: Lookalike, client: MailgunClient) -> None:
    email = message(provider_body={"v:oops": API_KEY, "h:X-Key": SIGNING_KEY})
    outcome = await client.send(email, make_config(lookalike.url))
    assert outcome.kind is OutcomeKind.SENT
    assert API_KEY not in repr(outcome) and SIGNING_KEY not in repr(outcome)
    assert (("v:oops", API_KEY)) in last(lookalike).fields  # sent as the user asked
