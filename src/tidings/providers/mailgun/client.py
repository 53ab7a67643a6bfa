"""Talking to Mailgun over HTTP: sending, the Events API, the domain webhooks API.

One pooled aiohttp ``ClientSession`` (keep-alive) per (origin, proxy) pair, created on first
use, so that every send to the same Mailgun host reuses connections and a proxied
configuration never shares a pool with a direct one. ``send`` never raises for anything
Mailgun or the network does: it returns a :class:`SendOutcome` (see ``errors``). The API
calls raise :class:`MailgunAPIError` / :class:`MailgunConnectionError` with a sentence that
says what to fix.

To tell "never arrived" (safe to retry) from "may have been accepted" (look it up first),
each send is traced: the bytes of the body handed to the connection are counted against the
body's size.

Connections follow the outbound network policy (:mod:`tidings.providers.outbound`): a host
or proxy that came through the API never reaches loopback, link-local or private addresses
unless the operator allows it, checked on the address actually connected to. A call the
policy refuses fails (it is never retried), and the API key never leaves. What a host other
than Mailgun's own answered is kept only as a short, sanitised excerpt.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from yarl import URL

from tidings.domain.network import answer_excerpt, origin_of
from tidings.providers.base import EventsPage, OutcomeKind, OutgoingEmail, SendOutcome
from tidings.providers.mailgun.errors import (
    UNAUTHORIZED_MESSAGE,
    MailgunAPIError,
    MailgunConfigError,
    MailgunConnectionError,
    PayloadError,
    Progress,
    classify,
    classify_transport_error,
    mailgun_message,
)
from tidings.providers.mailgun.hints import hint_for
from tidings.providers.mailgun.payload import (
    MailgunRequest,
    build_request,
    messages_url,
    redact,
)
from tidings.providers.mailgun.settings import MailgunConfig
from tidings.providers.outbound import Outbound, TargetRefused, refusal_in

__all__ = [
    "DomainInfo",
    "EventsPage",
    "MailgunClient",
    "Timeouts",
    "WebhookInfo",
]

_HTTP_PROXIES = frozenset({"http", "https"})
_SOCKS_PROXIES = frozenset({"socks4", "socks4a", "socks5", "socks5h"})
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_FORM = "application/x-www-form-urlencoded"
# Mailgun's own API hosts: their answers are kept whole; anyone else's only as an excerpt.
_MAILGUN_ORIGINS = frozenset({"https://api.mailgun.net:443", "https://api.eu.mailgun.net:443"})


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds. ``connect`` covers waiting for a pooled connection and opening one; ``read``
    is the longest silence while waiting for the answer; ``total`` caps the whole call."""

    connect: float = 10.0
    read: float = 60.0
    total: float | None = 120.0

    def client_timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=self.total, connect=self.connect, sock_connect=self.connect, sock_read=self.read
        )


@dataclass(frozen=True, slots=True)
class WebhookInfo:
    name: str  # delivered, permanent_fail, temporary_fail, opened, clicked, ...
    urls: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DomainInfo:
    name: str
    state: str | None  # "active", "unverified", "disabled"
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _Answer:
    status: int
    text: str
    headers: dict[str, str]


@dataclass(slots=True)
class _Tracker:
    """Filled by the trace callbacks of one request."""

    body_size: int | None = None
    headers_sent: bool = False
    body_sent: int = 0

    def progress(self, error: BaseException) -> Progress:
        if isinstance(error, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
            return Progress.NOT_CONNECTED
        if not self.headers_sent:
            return Progress.NOT_CONNECTED
        if self.body_size is not None and self.body_sent < self.body_size:
            return Progress.PARTIALLY_WRITTEN
        return Progress.WRITTEN


async def _on_headers_sent(
    session: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any
) -> None:
    tracker = ctx.trace_request_ctx
    if isinstance(tracker, _Tracker):
        tracker.headers_sent = True


async def _on_chunk_sent(session: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any) -> None:
    tracker = ctx.trace_request_ctx
    if isinstance(tracker, _Tracker):
        tracker.body_sent += len(params.chunk)


def _safe_filename(name: str) -> str:
    # Sent raw (UTF-8) in the part header, as Mailgun expects; a line break there would
    # end the header, so control characters go.
    return _CONTROL_CHARS.sub("_", name) or "attachment"


def _body(request: MailgunRequest) -> tuple[Any, dict[str, str], int | None]:
    """The request body, its headers and its size. Multipart only when there are files."""
    if not request.files:
        data = urlencode(request.fields).encode()
        return data, {"Content-Type": _FORM}, len(data)
    # quote_fields=False: filenames go out as raw UTF-8, not percent-encoded, which Mailgun
    # would otherwise show to the recipient literally.
    form = aiohttp.FormData(quote_fields=False)
    for name, value in request.fields:
        form.add_field(name, value)
    for name, attachment in request.files:
        form.add_field(
            name,
            attachment.data,
            filename=_safe_filename(attachment.filename),
            content_type=attachment.content_type or "application/octet-stream",
        )
    payload = form()
    return payload, {}, payload.size


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class MailgunClient:
    """Mailgun's HTTP API for any number of provider configurations. Close it when done."""

    def __init__(
        self,
        *,
        timeouts: Timeouts | None = None,
        connection_limit: int = 64,
        clock: Callable[[], datetime] | None = None,
        user_agent: str = "tidings (aiohttp)",
        outbound: Outbound | None = None,
    ) -> None:
        """``outbound`` is the process's network policy; ``None`` connects anywhere (tools
        and tests that call a host they chose themselves)."""
        self.timeouts = timeouts or Timeouts()
        self._outbound = outbound
        self.connection_limit = connection_limit
        self._clock = clock or (lambda: datetime.now(UTC))
        self._user_agent = user_agent
        self._sessions: dict[tuple[str, str | None], aiohttp.ClientSession] = {}

    async def __aenter__(self) -> MailgunClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()

    # -- connections ------------------------------------------------------------------------

    def _trace(self) -> aiohttp.TraceConfig:
        trace = aiohttp.TraceConfig()
        trace.on_request_headers_sent.append(_on_headers_sent)
        trace.on_request_chunk_sent.append(_on_chunk_sent)
        return trace

    def _connector(self, base: URL, proxy: URL | None) -> aiohttp.BaseConnector:
        if proxy is None or proxy.scheme in _HTTP_PROXIES:
            if self._outbound is not None:
                # The first connection goes to the proxy when there is one.
                return self._outbound.connector(
                    first_hop=str(proxy or base),
                    limit=self.connection_limit,
                    keepalive_timeout=30,
                )
            return aiohttp.TCPConnector(limit=self.connection_limit, keepalive_timeout=30)
        try:
            socks: Any = importlib.import_module("aiohttp_socks")
        except ImportError as exc:
            raise MailgunConfigError(
                f"proxy_url {_public_url(proxy)} is a SOCKS proxy, which needs the "
                "aiohttp-socks package: pip install aiohttp-socks"
            ) from exc
        # socks5h/socks4a mean "let the proxy resolve names": the same as rdns=True.
        scheme = {"socks5h": "socks5", "socks4a": "socks4"}.get(proxy.scheme, proxy.scheme)
        rdns = proxy.scheme in ("socks5h", "socks4a") or None
        connector: aiohttp.BaseConnector = socks.ProxyConnector.from_url(
            str(proxy.with_scheme(scheme)), rdns=rdns, limit=self.connection_limit
        )
        return connector

    def _route(
        self, config: MailgunConfig
    ) -> tuple[aiohttp.ClientSession, URL | None, dict[str, str] | None]:
        """The session for ``config`` and, for HTTP(S) proxies, the proxy (without its
        credentials) and the headers that authenticate to it."""
        base = URL(config.base_url)
        if base.scheme not in ("http", "https") or not base.host:
            raise MailgunConfigError(
                f"Mailgun base URL {config.base_url!r} is not an http(s) URL with a host"
            )
        proxy = URL(config.proxy_url) if config.proxy_url else None
        if proxy is not None and proxy.scheme not in _HTTP_PROXIES | _SOCKS_PROXIES:
            raise MailgunConfigError(
                f"proxy_url {_public_url(proxy)}: unsupported scheme {proxy.scheme!r} "
                "(use http, https, socks4, socks5 or socks5h)"
            )
        key = (str(base.origin()), config.proxy_url)
        session = self._sessions.get(key)
        if session is None or session.closed:
            session = aiohttp.ClientSession(
                connector=self._connector(base, proxy),
                timeout=self.timeouts.client_timeout(),
                trace_configs=[self._trace()],
                headers={"User-Agent": self._user_agent},
            )
            self._sessions[key] = session
        if proxy is None or proxy.scheme not in _HTTP_PROXIES:
            return session, None, None
        headers = (
            {"Proxy-Authorization": _basic_auth(proxy.user, proxy.password or "")}
            if proxy.user is not None
            else None
        )
        return session, proxy.with_user(None), headers

    async def _request(
        self,
        config: MailgunConfig,
        method: str,
        url: str,
        *,
        data: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        tracker: _Tracker | None = None,
    ) -> _Answer:
        session, proxy, proxy_headers = self._route(config)
        if self._outbound is not None and config.proxy_url and proxy is None:
            # A SOCKS connector resolves and connects to its proxy itself: check it first.
            reason = await self._outbound.refusal(config.proxy_url)
            if reason:
                raise TargetRefused(f"refused by the outbound network policy: {reason}")
        all_headers = {**(headers or {}), "Authorization": _basic_auth("api", config.api_key)}
        if proxy_headers and URL(url).scheme == "http":
            # A plain-http request goes to the proxy as is (no CONNECT), so the proxy's
            # credentials travel in the request's own headers.
            all_headers.update(proxy_headers)
            proxy_headers = None
        async with session.request(
            method,
            url,
            data=data,
            params=params,
            headers=all_headers,
            proxy=proxy,
            proxy_headers=proxy_headers,
            allow_redirects=False,  # a redirect would mean a wrong base URL; never follow it
            trace_request_ctx=tracker,
        ) as response:
            text = await response.text(errors="replace")
            return _Answer(response.status, text, dict(response.headers))

    # -- sending ----------------------------------------------------------------------------

    async def send(self, email: OutgoingEmail, config: MailgunConfig) -> SendOutcome:
        """Build and send one email (tools and tests; the dispatcher builds once itself and
        calls :meth:`send_request`). A message Mailgun would refuse for a known reason (more
        than 3 tags) is FAILED without a call."""
        try:
            request = build_request(email, config)
        except PayloadError as exc:
            empty = MailgunRequest(url=messages_url(config), region=config.region, fields=[])
            return SendOutcome(
                kind=OutcomeKind.FAILED,
                request=redact(empty, config.secrets()),
                error_message=str(exc),
            )
        return await self.send_request(request, config)

    async def send_request(self, request: MailgunRequest, config: MailgunConfig) -> SendOutcome:
        """Send one built request. Never raises for Mailgun's answers or network failures.

        A configuration that cannot work (a SOCKS proxy without aiohttp-socks) is RETRY with
        the reason, since nothing left the machine and fixing it needs no resend.
        """
        secrets = config.secrets()
        record = redact(request, secrets)
        body, headers, size = _body(request)
        tracker = _Tracker(body_size=size)
        started = time.perf_counter()
        try:
            answer = await self._request(
                config, request.method, request.url, data=body, headers=headers, tracker=tracker
            )
        except MailgunConfigError as exc:
            return SendOutcome(kind=OutcomeKind.RETRY, request=record, error_message=str(exc))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            refused = refusal_in(exc)
            if refused is not None:
                return SendOutcome(
                    kind=OutcomeKind.FAILED,
                    request=record,
                    provider_fault=True,
                    error_message=f"{refused} (nothing was sent)",
                    duration_ms=(time.perf_counter() - started) * 1000,
                )
            return classify_transport_error(
                exc,
                tracker.progress(exc),
                request=record,
                duration_ms=(time.perf_counter() - started) * 1000,
            )
        outcome = classify(
            answer.status,
            answer.text,
            answer.headers,
            request=record,
            now=self._clock(),
            duration_ms=(time.perf_counter() - started) * 1000,
        )
        if _is_mailgun(config.base_url):
            return outcome
        return dataclasses.replace(
            outcome,
            response_body=answer_excerpt(outcome.response_body) or None,
            error_message=answer_excerpt(outcome.error_message) or None,
        )

    # -- the JSON APIs ----------------------------------------------------------------------

    async def _api(
        self,
        config: MailgunConfig,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        form: Sequence[tuple[str, str]] | None = None,
        not_found: str | None = None,
    ) -> dict[str, Any]:
        data = urlencode(list(form)).encode() if form is not None else None
        headers = {"Content-Type": _FORM} if form is not None else None
        try:
            answer = await self._request(
                config, method, url, data=data, headers=headers, params=params
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            where = URL(url).origin()
            refused = refusal_in(exc)
            if refused is not None:
                raise MailgunConfigError(f"{where} not called: {refused}") from exc
            raise MailgunConnectionError(
                f"could not reach Mailgun at {where}: {_describe(exc)}"
            ) from exc
        if 200 <= answer.status < 300:
            try:
                data_out = _json_object(answer.text)
            except ValueError as exc:
                raise MailgunAPIError(
                    f"Mailgun answered {answer.status} to {method} {url} with something that "
                    "is not a JSON object",
                    status_code=answer.status,
                    body=_kept_body(config, answer.text),
                ) from exc
            return data_out
        raise _api_error(config, method, url, answer, not_found)

    def _domain_url(self, config: MailgunConfig, path: str = "") -> str:
        return f"{config.base_url.rstrip('/')}/v3/domains/{config.domain}{path}"

    async def events_page(
        self,
        config: MailgunConfig,
        *,
        begin: float | None = None,
        end: float | None = None,
        ascending: bool = True,
        limit: int = 300,
        filters: dict[str, str] | None = None,
    ) -> EventsPage:
        """The first page of ``GET /v3/{domain}/events`` for a time window (epoch seconds)."""
        params: dict[str, str] = {"ascending": "yes" if ascending else "no", "limit": str(limit)}
        if begin is not None:
            params["begin"] = _epoch(begin)
        if end is not None:
            params["end"] = _epoch(end)
        params.update(filters or {})
        url = f"{config.base_url.rstrip('/')}/v3/{config.domain}/events"
        return _events_page(await self._api(config, "GET", url, params=params))

    async def events_next(self, config: MailgunConfig, url: str) -> EventsPage:
        """The page at a ``paging.next`` URL. It must be on the configuration's own host:
        the API key is sent with it."""
        if URL(url).origin() != URL(config.base_url).origin():
            raise MailgunConfigError(
                f"refusing to follow an events page on {URL(url).origin()}: the configuration "
                f"talks to {URL(config.base_url).origin()} and the API key goes with the call"
            )
        return _events_page(await self._api(config, "GET", url))

    async def get_domain(self, config: MailgunConfig) -> DomainInfo:
        """``GET /v3/domains/{domain}``: proves the key works in this region and the domain
        exists there."""
        data = await self._api(config, "GET", self._domain_url(config))
        found = data.get("domain")
        domain: dict[str, Any] = found if isinstance(found, dict) else {}
        return DomainInfo(
            name=str(domain.get("name") or config.domain),
            state=str(domain["state"]) if domain.get("state") is not None else None,
            raw=data,
        )

    async def list_webhooks(self, config: MailgunConfig) -> list[WebhookInfo]:
        data = await self._api(config, "GET", self._domain_url(config, "/webhooks"))
        hooks = data.get("webhooks")
        if not isinstance(hooks, dict):
            return []
        return [WebhookInfo(name, _urls(value)) for name, value in sorted(hooks.items())]

    async def create_webhook(
        self, config: MailgunConfig, name: str, urls: Sequence[str]
    ) -> WebhookInfo:
        form = [("id", name), *(("url", url) for url in urls)]
        data = await self._api(config, "POST", self._domain_url(config, "/webhooks"), form=form)
        return WebhookInfo(name, _urls(data.get("webhook")) or tuple(urls))

    async def update_webhook(
        self, config: MailgunConfig, name: str, urls: Sequence[str]
    ) -> WebhookInfo:
        form = [("url", url) for url in urls]
        data = await self._api(
            config,
            "PUT",
            self._domain_url(config, f"/webhooks/{name}"),
            form=form,
            not_found=f"Mailgun has no {name!r} webhook for {config.domain}",
        )
        return WebhookInfo(name, _urls(data.get("webhook")) or tuple(urls))

    async def delete_webhook(self, config: MailgunConfig, name: str) -> None:
        await self._api(
            config,
            "DELETE",
            self._domain_url(config, f"/webhooks/{name}"),
            not_found=f"Mailgun has no {name!r} webhook for {config.domain}",
        )

    # -- suppression lists (bounces, unsubscribes, complaints) ------------------------------

    async def suppressions_page(
        self, config: MailgunConfig, name: str, *, url: str | None = None, limit: int = 1000
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of ``GET /v3/{domain}/{name}`` (the first, or the one at a
        ``paging.next`` URL, which must be on the configuration's host): its items and the
        next page's URL."""
        if url is None:
            first = f"{config.base_url.rstrip('/')}/v3/{config.domain}/{name}"
            data = await self._api(config, "GET", first, params={"limit": str(limit)})
        else:
            if URL(url).origin() != URL(config.base_url).origin():
                raise MailgunConfigError(
                    f"refusing to follow a {name} page on {URL(url).origin()}: the "
                    f"configuration talks to {URL(config.base_url).origin()} and the API key "
                    "goes with the call"
                )
            data = await self._api(config, "GET", url)
        page = _events_page(data)  # the same {"items", "paging": {"next"}} shape
        return page.items, page.next_url

    async def delete_suppression(self, config: MailgunConfig, name: str, address: str) -> bool:
        """``DELETE /v3/{domain}/{name}/{address}``: True if it was listed, False if Mailgun
        had no such entry (404 for the address, not for the domain)."""
        url = f"{config.base_url.rstrip('/')}/v3/{config.domain}/{name}/{quote(address, safe='')}"
        try:
            await self._api(
                config, "DELETE", url, not_found=f"{address} is not on {config.domain}'s {name}"
            )
        except MailgunAPIError as exc:
            if exc.status_code == 404 and "domain not found" not in exc.body.lower():
                return False
            raise
        return True


def _is_mailgun(base_url: str) -> bool:
    return origin_of(base_url) in _MAILGUN_ORIGINS


def _kept_body(config: MailgunConfig, text: str) -> str:
    return text[:2000] if _is_mailgun(config.base_url) else answer_excerpt(text)


def _basic_auth(user: str, password: str) -> str:
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def _public_url(url: URL) -> str:
    """A URL safe to print: without its password."""
    return str(url.with_password(None)) if url.password else str(url)


def _epoch(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".")


def _json_object(text: str) -> dict[str, Any]:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _urls(value: Any) -> tuple[str, ...]:
    """Webhook URLs from ``{"urls": [...]}`` (today) or ``{"url": "..."}`` (older answers)."""
    if not isinstance(value, dict):
        return ()
    urls = value.get("urls")
    if isinstance(urls, list):
        return tuple(str(url) for url in urls)
    url = value.get("url")
    return (str(url),) if url else ()


def _events_page(data: dict[str, Any]) -> EventsPage:
    items = data.get("items")
    paging = data.get("paging")
    next_url = paging.get("next") if isinstance(paging, dict) else None
    return EventsPage(
        items=[item for item in items if isinstance(item, dict)] if isinstance(items, list) else [],
        next_url=str(next_url) if next_url else None,
    )


def _api_error(
    config: MailgunConfig, method: str, url: str, answer: _Answer, not_found: str | None
) -> MailgunAPIError:
    message = mailgun_message(answer.text) or f"HTTP {answer.status}"
    if not _is_mailgun(config.base_url):
        message = answer_excerpt(message) or f"HTTP {answer.status}"
    where = f"domain {config.domain} at {URL(config.base_url).origin()}"
    if answer.status == 401:
        text = f"{UNAUTHORIZED_MESSAGE} ({where})"
    elif answer.status == 404 and (not_found is None or "domain not found" in message.lower()):
        text = f"Mailgun does not know {where} (404 {message}): wrong domain or region"
    elif answer.status == 404 and not_found is not None:
        text = f"{not_found} (404 {message})"
    else:
        text = f"Mailgun answered {answer.status} to {method} {URL(url).path}: {message}"
    hint = hint_for(answer.status, message)
    return MailgunAPIError(
        text,
        status_code=answer.status,
        body=_kept_body(config, answer.text),
        hint=hint.text() if hint else None,
    )
