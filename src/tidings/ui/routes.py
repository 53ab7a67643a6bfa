"""The UI's routes: login and logout, the message list and page, the provider pages.

Pages are rendered on the server from the store; the browser's script only adds what must be
live (status through the SSE endpoints, the polling switch, the doctor, copying a URL) and
talks to the ordinary API with the session cookie. Every page needs a valid session; without
one it redirects to the login form.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Callable, Coroutine
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.exceptions import HTTPException

from tidings.domain.errors import ValidationError
from tidings.render.errors import RenderError
from tidings.render.message import render_message
from tidings.render.pool import RenderFailure
from tidings.runtime import Runtime, runtime, throttle, webhook_url
from tidings.runtime.sessions import (
    CSRF_HEADER,
    SESSION_COOKIE,
    close_session,
    has_session,
    open_session,
)
from tidings.store import messages as store
from tidings.store import profiles as profiles_store
from tidings.store import providers
from tidings.store import templates as templates_store
from tidings.store.keyring import KeyRing
from tidings.store.messages import MessageFilter
from tidings.store.status_feed import last_event_id
from tidings.store.template_payload import UnknownBrand, template_payload
from tidings.ui import views

PAGE_SIZE = 50

# Inline styles are allowed because the rendered email (an iframe's srcdoc inherits this
# policy) is styled inline; scripts only from our own static file, and the email's iframe is
# sandboxed without allow-scripts anyway. Images only from here or data: URLs, so looking at
# an email in the UI never loads its remote images (an open-tracking pixel would mark the
# message OPENED).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-src 'self' about:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    # Webhook URLs on these pages carry a secret token: never send them on as a referrer.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}

_env = Environment(
    loader=PackageLoader("tidings.ui", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["badge"] = views.badge_class
_env.filters["when"] = views.fmt_time


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = _env.get_template(template).render(request=request, csrf_header=CSRF_HEADER, **context)
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


async def require_session(request: Request) -> None:
    """Send a browser without a valid session to the login form, then back here."""
    throttle.refuse_if_throttled(request)
    if await has_session(request):
        return
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    raise HTTPException(
        status_code=303,
        detail="log in first",
        headers={"Location": "/ui/login?" + urlencode({"next": target}), **SECURITY_HEADERS},
    )


class _PageRoute(APIRoute):
    """A page whose redirects (to the login form) are bare: a status and a Location, with no
    JSON error body, as a browser (or curl) expects of a redirect."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except HTTPException as exc:
                if not 300 <= exc.status_code < 400:
                    raise
                return Response(status_code=exc.status_code, headers=exc.headers)

        return handle


public = APIRouter(include_in_schema=False)
pages = APIRouter(
    prefix="/ui",
    include_in_schema=False,
    dependencies=[Depends(require_session)],
    route_class=_PageRoute,
)


# -- login, logout, static files -----------------------------------------------------------


@public.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@public.get("/ui/login")
async def login_form(request: Request, next: str = "") -> Response:
    return render(request, "login.html", next=views.safe_next(next), error=None)


@public.post("/ui/login")
async def login(
    request: Request,
    key: str = Form(default=""),
    next: str = Form(default=""),
    rt: Runtime = Depends(runtime),
) -> Response:
    ring: KeyRing = rt.keyring
    target = views.safe_next(next)
    if not _same_origin(request):
        # Another site's form must not log this browser in (login CSRF).
        return render(
            request,
            "login.html",
            status_code=403,
            next=target,
            error="This login form was posted from another site.",
        )
    try:
        throttle.refuse_if_throttled(request)
    except HTTPException as refused:
        page = render(
            request, "login.html", status_code=429, next=target, error=str(refused.detail)
        )
        page.headers.update(refused.headers or {})
        return page
    known = ring.known_now(key.strip())
    if key.strip() and not known:
        throttle.charge_try(request)  # before the check, which awaits; refunded if right
    if not known and not await ring.verify(key.strip()):
        return render(
            request,
            "login.html",
            status_code=401,
            next=target,
            error="That key does not open this server. Use the value of TIDINGS_API_KEY "
            "(or the key printed when the server first started).",
        )
    if known:
        throttle.note_success(request)
    else:
        throttle.refund_try(request)
    response = RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
    response.set_cookie(
        SESSION_COOKIE,
        await open_session(rt),
        max_age=int(rt.settings.ui_session_ttl_s),
        path="/",  # the SSE and API endpoints the pages call live outside /ui
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


def _same_origin(request: Request) -> bool:
    """Refuse a form posted by another site's page. Browsers say where a post comes from in
    ``Sec-Fetch-Site`` and ``Origin`` (``null`` under this UI's no-referrer policy)."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    return origin.rstrip("/") == f"{request.url.scheme}://{request.url.netloc}"


@public.post("/ui/logout")
async def logout(request: Request, rt: Runtime = Depends(runtime)) -> Response:
    # The row goes: a copy of the cookie kept anywhere opens nothing any more.
    await close_session(rt, request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/ui/login", status_code=303, headers=SECURITY_HEADERS)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response


@public.get("/ui/static/{name}")
async def static(name: str) -> Response:
    suffix = name[name.rfind(".") :] if "." in name else ""
    media_type = _STATIC_TYPES.get(suffix)
    item = resources.files("tidings.ui").joinpath("static", name)
    # Only plain file names: no path ever leaves the static folder.
    if media_type is None or "/" in name or "\\" in name or not item.is_file():
        raise HTTPException(status_code=404, detail="Not Found")
    return Response(
        item.read_bytes(),
        media_type=media_type,
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


# -- messages ------------------------------------------------------------------------------


async def _tags_by_message(rt: Runtime, ids: list[str]) -> dict[str, list[str]]:
    async with rt.db.read() as conn:
        tags = await store.tags_of_many(conn, ids)
    return {message_id: sorted(found) for message_id, found in tags.items()}


def _subject(row: Any) -> str:
    rendered = row.rendered or {}
    return str(rendered.get("subject") or "") if isinstance(rendered, dict) else ""


@pages.get("/")
async def message_list(
    request: Request,
    status: str = "",
    recipient: str = "",
    tag: str = "",
    since: str = "",
    cursor: str = "",
    rt: Runtime = Depends(runtime),
) -> Response:
    filters = {"status": status, "recipient": recipient, "tag": tag, "since": since}
    errors: list[str] = []
    after = None
    try:
        after = views.parse_since(since)
    except ValueError as exc:
        errors.append(str(exc))
    status_value = status.strip().upper()
    if status_value and status_value not in views.STATUSES:
        errors.append(f"status: '{status}' is not one of {', '.join(views.STATUSES)}")
        status_value = ""
    flt = MessageFilter(
        recipient=recipient.strip() or None,
        statuses=[status_value] if status_value else None,
        tags=[tag.strip()] if tag.strip() else None,
        enqueued_after=after,
    )
    rows: list[Any] = []
    next_cursor: str | None = None
    stream_after = 0
    try:
        async with rt.db.read() as conn:
            # Read first: the live stream resumes from here, so a change committed between
            # this page's query and the browser's connection is not missed.
            stream_after = await last_event_id(conn)
            rows, next_cursor = await store.search(
                conn, flt, cursor=cursor or None, limit=PAGE_SIZE
            )
    except (ValueError, binascii.Error, json.JSONDecodeError):
        errors.append("cursor: not a page of this list; start again from the newest")
    tags = await _tags_by_message(rt, [r.id for r in rows])
    items = [
        {
            "id": r.id,
            "status": r.status,
            "recipient": r.recipient_email or r.recipient or "",
            "subject": _subject(r),
            "tags": tags.get(r.id, []),
            "enqueued": r.enqueued,
            "hint": bool(r.hint),
        }
        for r in rows
    ]
    kept = {k: v for k, v in filters.items() if v}
    return render(
        request,
        "messages.html",
        nav="messages",
        items=items,
        filters=filters,
        statuses=views.STATUSES,
        errors=errors,
        next_url=("/ui/?" + urlencode({**kept, "cursor": next_cursor})) if next_cursor else None,
        first_url=("/ui/?" + urlencode(kept)) if cursor else None,
        # New messages are added live only where they belong without asking the server:
        # the newest page of an unfiltered list.
        live_insert=not cursor and not kept,
        stream_url=f"/messages/stream?after={stream_after}",
    )


@pages.get("/messages/{message_id}")
async def message_page(
    request: Request, message_id: str, rt: Runtime = Depends(runtime)
) -> Response:
    async with rt.db.read() as conn:
        row = await store.get(conn, message_id)
        if row is None:
            return render(
                request,
                "not_found.html",
                status_code=404,
                nav="messages",
                what="message",
                name=message_id,
            )
        entries = await store.history_of(conn, message_id)
        attempts = await store.attempts_of(conn, message_id)
        tags = await store.tags_of(conn, message_id)
        provider = await providers.get(conn, row.provider_id) if row.provider_id else None
    secrets: list[str | None] = []
    if provider is not None:
        secrets += [provider.settings.get("api_key"), provider.settings.get("webhook_signing_key")]
    if rt.settings.api_key is not None:
        secrets.append(rt.settings.api_key.get_secret_value())
    redact = views.Redactor(secrets)
    rendered = row.rendered if isinstance(row.rendered, dict) else {}
    times = [
        (name, getattr(row, name))
        for name in ("enqueued", "sent", "delivered", "opened", "clicked")
        if getattr(row, name) is not None
    ]
    timeline = [views.entry_view(h.type, h.ts, h.data or {}, redact) for h in entries]
    hint = views.split_hint(redact.text(row.hint) if row.hint else None)
    if hint is None and row.status in ("UNDELIVERABLE", "UNROUTABLE"):
        # A bounce's hint comes from its event: the newest failure that has one explains it.
        hint = next((e.hint for e in reversed(timeline) if e.hint is not None), None)
    return render(
        request,
        "message.html",
        nav="messages",
        m=row,
        tags=tags,
        times=times,
        hint=hint,
        error=redact.text(row.error) if row.error else None,
        timeline=timeline,
        attempts=attempts,
        provider=provider,
        subject=redact.text(str(rendered.get("subject") or "")),
        html=rendered.get("html") or "",
        text=rendered.get("text") or "",
    )


# -- providers -----------------------------------------------------------------------------


@pages.get("/providers")
async def provider_list(request: Request, rt: Runtime = Depends(runtime)) -> Response:
    async with rt.db.read() as conn:
        stored = await providers.list_all(conn)
    return render(
        request,
        "providers.html",
        nav="providers",
        providers=[{"p": p, "settings": dict(views.masked_settings(p.settings))} for p in stored],
    )


@pages.get("/providers/{provider_id}")
async def provider_page(
    request: Request, provider_id: str, rt: Runtime = Depends(runtime)
) -> Response:
    async with rt.db.read() as conn:
        stored = await providers.get(conn, provider_id)
    if stored is None:
        return render(
            request,
            "not_found.html",
            status_code=404,
            nav="providers",
            what="provider",
            name=provider_id,
        )
    return render(
        request,
        "provider.html",
        nav="providers",
        p=stored,
        settings=views.masked_settings(stored.settings),
        polling=str(stored.settings.get("polling", "on")),
        webhook_url=webhook_url(rt.public_url, stored),
    )


# -- templates ------------------------------------------------------------------------------


@pages.get("/templates")
async def template_list(request: Request, rt: Runtime = Depends(runtime)) -> Response:
    async with rt.db.read() as conn:
        page = await templates_store.list_page(conn, limit=200, cursor=None)
    return render(
        request, "templates.html", nav="templates", templates=page.results, more=page.cursor
    )


def _preview_form(request: Request) -> dict[str, str]:
    query = request.query_params
    return {
        "version": query.get("version") or "published",
        "user": query.get("user") or "",
        "locale": query.get("locale") or "",
        "data": query.get("data") or "{}",
    }


@pages.get("/templates/{template_id}")
async def template_page(
    request: Request, template_id: str, rt: Runtime = Depends(runtime)
) -> Response:
    form = _preview_form(request)
    errors: list[str] = []
    rendered = None
    used: templates_store.SendableTemplate | None = None
    async with rt.db.read() as conn:
        stored = await templates_store.get(conn, template_id)
        if stored is None or stored.archived_at is not None:
            return render(
                request,
                "not_found.html",
                status_code=404,
                nav="templates",
                what="template",
                name=template_id,
            )
        version = form["version"]
        if version == "published" and stored.published_version is None:
            version = "draft"
        try:
            data = json.loads(form["data"])
            if not isinstance(data, dict):
                raise ValueError("must be a JSON object")
        except ValueError as exc:
            errors.append(f"Data: not a JSON object ({exc})")
            data = {}
        profile: dict[str, Any] = {}
        if form["user"]:
            found = await profiles_store.get(conn, form["user"])
            if found is None:
                errors.append(f"User: there is no profile for {form['user']!r}")
            else:
                profile = dict(found[0])
        if form["locale"]:
            profile["locale"] = form["locale"]
        try:
            used = await templates_store.find_version(conn, template_id, version)
            payload = await template_payload(conn, used, data, None)
        except (templates_store.TemplateUnavailable, UnknownBrand) as exc:
            errors.append(str(exc))
            payload = None
    if payload is not None and not errors:
        try:
            rendered = await rt.render_pool.run(render_message, payload, profile)
        except (RenderError, ValidationError, RenderFailure) as exc:
            errors.append(f"Rendering failed: {exc}")
    versions = ["published", "draft"] + [f"v{n:03d}" for n in range(stored.version_count, 0, -1)]
    return render(
        request,
        "template.html",
        nav="templates",
        t=stored,
        form=form,
        versions=versions,
        used=used,
        errors=errors,
        rendered=rendered,
    )


router = APIRouter(include_in_schema=False)
router.include_router(public)
router.include_router(pages)
