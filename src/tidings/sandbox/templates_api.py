"""``/v3/{domain}/templates``: Mailgun's domain templates and their versions over HTTP.

Templates: list (paged by ``page``/``p``/``limit``), create (with an initial version when
``template`` is given), get (``active=yes`` adds the active version with its content),
update (description), delete one, delete all. Versions: list, create, get, update (content,
comment, headers, ``active``), delete, copy. Every form field is checked: one Mailgun does
not take is a 400 naming it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from tidings.sandbox.auth import ApiKeyCheck
from tidings.sandbox.core import Sandbox
from tidings.sandbox.errors import MailgunError, domain_not_found, forbidden, json_response
from tidings.sandbox.forms import read_form
from tidings.sandbox.messages_api import Endpoint
from tidings.sandbox.templates import (
    ENGINE,
    TEMPLATE_HEADERS,
    Compiled,
    RenderError,
    Template,
    TemplateStore,
    Version,
    compile_all,
)
from tidings.sandbox.urls import api_base

MAX_LIMIT = 100
DEFAULT_LIMIT = 100
PAGES = ("first", "last", "next", "previous")
_YES = ("yes", "true", "1")
_NO = ("no", "false", "0")

T = TypeVar("T")


def template_not_found() -> MailgunError:
    return MailgunError(404, "template not found")


def version_not_found() -> MailgunError:
    return MailgunError(404, "template version not found")


def missing(name: str) -> MailgunError:
    return MailgunError(400, f"Missing mandatory parameter: {name}")


def unsupported_engine(engine: str) -> MailgunError:
    # Mailgun also has a "go" engine; the sandbox renders Handlebars only.
    return MailgunError(
        400, f"Invalid parameter: engine {engine} is not supported (the sandbox has {ENGINE})"
    )


def _flag(value: str, name: str) -> bool:
    lowered = value.lower()
    if lowered in _YES:
        return True
    if lowered in _NO:
        return False
    raise MailgunError(400, f"Invalid {name}: expected 'yes' or 'no'")


def _headers(raw: str | None) -> dict[str, str]:
    if raw is None or raw == "":
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise MailgunError(400, "'headers' parameter is not a valid JSON object of strings")
    canonical = {name.lower(): name for name in TEMPLATE_HEADERS}
    headers: dict[str, str] = {}
    for name, header_value in value.items():
        known = canonical.get(str(name).lower())
        if known is None:
            raise MailgunError(
                400,
                f"header '{name}' is not supported: only {', '.join(TEMPLATE_HEADERS)} may be "
                "stored with a template",
            )
        headers[known] = header_value
    return headers


def _page(
    items: Sequence[T], key: Callable[[T], str], params: dict[str, str]
) -> tuple[list[T], int]:
    """A page of ``items`` (in their order) by Mailgun's ``page``, ``p`` and ``limit``."""
    raw_limit = params.get("limit")
    if raw_limit is None:
        limit = DEFAULT_LIMIT
    else:
        try:
            limit = int(raw_limit)
        except ValueError:
            limit = -1
        if not 1 <= limit <= MAX_LIMIT:
            raise MailgunError(400, f"Invalid limit: must be an integer between 1 and {MAX_LIMIT}")
    page = params.get("page", "first")
    if page == "prev":  # the spelling of Mailgun's own paging URLs (mailgun-go's mock)
        page = "previous"
    if page not in PAGES:
        raise MailgunError(400, "Invalid page: expected one of first, last, next, previous")
    pivot = params.get("p")
    keys = [key(item) for item in items]
    if page == "first":
        return list(items[:limit]), limit
    if page == "last":
        return list(items[-limit:]), limit
    if pivot is None:  # (an empty pivot, from the links of an empty page, is "before all")
        raise MailgunError(400, "Invalid parameter: pivot ")
    # The pivot is the key of the page's last (next) or first (previous) item; a key that
    # is gone since falls between its neighbours by order.
    if pivot in keys:
        at = keys.index(pivot)
        after, before = at + 1, at
    else:
        after = next((i for i, k in enumerate(keys) if k > pivot), len(keys))
        before = after
    if page == "next":
        return list(items[after : after + limit]), limit
    return list(items[max(0, before - limit) : before]), limit


def _paging(
    base: str, page: Sequence[T], key: Callable[[T], str], limit: int, pivot: str | None
) -> Any:
    def link(**query: str) -> str:
        return f"{base}?{urlencode({**query, 'limit': str(limit)})}"

    first_key = key(page[0]) if page else (pivot or "")
    last_key = key(page[-1]) if page else (pivot or "")
    return {
        "first": link(page="first"),
        "last": link(page="last"),
        "next": link(page="next", p=last_key),
        "previous": link(page="previous", p=first_key),
    }


def templates_endpoints(sandbox: Sandbox) -> dict[str, Endpoint]:
    store = sandbox.store
    templates: TemplateStore = sandbox.templates
    auth = ApiKeyCheck(sandbox.settings.api_key)
    max_bytes = sandbox.settings.max_message_bytes

    async def fields_of(request: Request, allowed: tuple[str, ...]) -> dict[str, str]:
        fields, files = await read_form(request, max_bytes)
        values: dict[str, str] = {}
        for name, value in fields:
            if name not in allowed:
                raise MailgunError(400, f"'{name}' parameter is not supported here")
            values[name] = value
        if files:
            raise MailgunError(400, f"'{files[0][0]}' parameter must not be a file")
        return values

    def guarded(route: str, handler: Callable[[Request, str], Any]) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            counted = f"{request.method} {route}"
            if not auth.allows(request.headers.get("authorization")):
                store.count_request(counted, 401)
                return forbidden()
            domain: str = request.path_params["domain"]
            try:
                if domain not in store.domains:
                    raise domain_not_found(domain)
                body, status = await handler(request, domain)
            except MailgunError as error:
                store.count_request(counted, error.status)
                return error.response()
            store.count_request(counted, status)
            return json_response(body, status)

        return endpoint

    def template_of(domain: str, request: Request) -> Template:
        name = str(request.path_params["name"]).lower()
        found = templates.of(domain).get(name)
        if found is None:
            raise template_not_found()
        return found

    def version_of(template: Template, tag: str) -> Version:
        found = template.versions.get(tag)
        if found is None:
            raise version_not_found()
        return found

    async def compiled(source: str, headers: dict[str, str]) -> dict[str, Compiled]:
        """The version's template and header sources compiled (off the loop), or a 400."""
        try:
            return await compile_all([source, *headers.values()])
        except RenderError as error:
            raise MailgunError(400, f"template is invalid: {error}") from error

    # -- templates ------------------------------------------------------------------------

    async def collection(request: Request, domain: str) -> tuple[Any, int]:
        if request.method == "GET":
            params = dict(request.query_params)
            for name in params:
                if name not in ("page", "p", "limit"):
                    raise MailgunError(400, f"'{name}' parameter is not supported here")
            items = templates.sorted(domain)
            page, limit = _page(items, lambda t: t.name, params)
            base = f"{api_base(request)}/v3/{domain}/templates"
            return {
                "items": [t.describe() for t in page],
                "paging": _paging(base, page, lambda t: t.name, limit, params.get("p")),
            }, 200
        if request.method == "DELETE":
            templates.of(domain).clear()
            return {"message": "templates have been deleted"}, 200
        values = await fields_of(
            request,
            ("name", "description", "createdBy", "template", "tag", "comment", "headers", "engine"),
        )
        name = values.get("name", "").strip().lower()
        if not name:
            raise missing("name")
        if any(c.isspace() for c in name) or "/" in name:
            raise MailgunError(400, "Invalid parameter: name is invalid")
        if values.get("engine", ENGINE).lower() != ENGINE:
            raise unsupported_engine(values["engine"])
        if name in templates.of(domain):
            raise MailgunError(409, f"template with name '{name}' already exists")
        headers = _headers(values.get("headers"))
        source = values.get("template")
        if source is None and ("tag" in values or "comment" in values):
            raise missing("template")
        template = Template(
            name, values.get("description", ""), values.get("createdBy", ""), time.time()
        )
        shown = template.describe()
        if source is not None:
            ready = await compiled(source, headers)
            if name in templates.of(domain):  # stored by another request meanwhile
                raise MailgunError(409, f"template with name '{name}' already exists")
            version = templates.new_version(
                template,
                values.get("tag") or "initial",
                source,
                values.get("comment", ""),
                headers,
                ready,
            )
            template.activate(version.tag)
            shown["version"] = version.describe()
        templates.of(domain)[name] = template
        return {"message": "template has been stored", "template": shown}, 200

    async def one(request: Request, domain: str) -> tuple[Any, int]:
        template = template_of(domain, request)
        if request.method == "GET":
            params = dict(request.query_params)
            for name in params:
                if name != "active":
                    raise MailgunError(400, f"'{name}' parameter is not supported here")
            shown = template.describe()
            if _flag(params.get("active", "no"), "active"):  # yes (documented) or true
                active = template.active()
                if active is not None:
                    shown["version"] = active.describe()
            return {"template": shown}, 200
        if request.method == "DELETE":
            del templates.of(domain)[template.name]
            return {
                "message": "template has been deleted",
                "template": {"name": template.name},
            }, 200
        values = await fields_of(request, ("description",))
        if "description" not in values:
            raise MailgunError(400, "No fields are provided to update")
        template.description = values["description"]
        return {"message": "template has been updated", "template": {"name": template.name}}, 200

    # -- versions -------------------------------------------------------------------------

    async def versions(request: Request, domain: str) -> tuple[Any, int]:
        template = template_of(domain, request)
        if request.method == "GET":
            params = dict(request.query_params)
            for name in params:
                if name not in ("page", "p", "limit"):
                    raise MailgunError(400, f"'{name}' parameter is not supported here")
            items = list(template.versions.values())
            page, limit = _page(items, lambda v: v.tag, params)
            base = f"{api_base(request)}/v3/{domain}/templates/{template.name}/versions"
            shown = template.describe()
            shown["versions"] = [v.describe(content=False) for v in page]
            return {
                "template": shown,
                "paging": _paging(base, page, lambda v: v.tag, limit, params.get("p")),
            }, 200
        values = await fields_of(
            request, ("template", "tag", "comment", "active", "headers", "engine")
        )
        tag = values.get("tag", "").strip()
        if not values.get("template"):
            raise missing("template")
        if not tag:
            raise missing("tag")
        if values.get("engine", ENGINE).lower() != ENGINE:
            raise unsupported_engine(values["engine"])
        if tag in template.versions:
            raise MailgunError(409, f"version {tag} already exists")
        headers = _headers(values.get("headers"))
        active = _flag(values.get("active", "no"), "active")
        ready = await compiled(values["template"], headers)
        if tag in template.versions:  # stored by another request meanwhile
            raise MailgunError(409, f"version {tag} already exists")
        version = templates.new_version(
            template, tag, values["template"], values.get("comment", ""), headers, ready
        )
        if active or template.active() is None:
            template.activate(tag)
        shown = template.describe()
        shown["version"] = version.describe()
        return {"message": "new version of the template has been stored", "template": shown}, 200

    async def version(request: Request, domain: str) -> tuple[Any, int]:
        template = template_of(domain, request)
        found = version_of(template, str(request.path_params["tag"]))
        if request.method == "GET":
            for name in request.query_params:
                raise MailgunError(400, f"'{name}' parameter is not supported here")
            shown = template.describe()
            shown["version"] = found.describe()
            return {"template": shown}, 200
        if request.method == "DELETE":
            del template.versions[found.tag]
            return {
                "message": "version has been deleted",
                "template": {"name": template.name, "version": {"tag": found.tag}},
            }, 200
        values = await fields_of(request, ("template", "comment", "active", "headers"))
        if not values:
            raise MailgunError(400, "No fields are provided to update")
        activate = _flag(values["active"], "active") if "active" in values else None
        if activate is False and found.active:
            raise MailgunError(
                400, "the active version cannot be deactivated: activate another version instead"
            )
        if "template" in values or "headers" in values:
            source = values.get("template", found.template)
            headers = _headers(values["headers"]) if "headers" in values else found.headers
            found.compiled = await compiled(source, headers)
            found.template, found.headers = source, headers
        if "comment" in values:
            found.comment = values["comment"]
        if activate:
            template.activate(found.tag)
        return {
            "message": "version has been updated",
            "template": {"name": template.name, "version": {"tag": found.tag}},
        }, 200

    async def copy(request: Request, domain: str) -> tuple[Any, int]:
        template = template_of(domain, request)
        found = version_of(template, str(request.path_params["tag"]))
        new_tag = str(request.path_params["new_tag"])
        params = dict(request.query_params)
        for name in params:
            if name != "comment":
                raise MailgunError(400, f"'{name}' parameter is not supported here")
        params.update(await fields_of(request, ("comment",)))
        replaced = template.versions.get(new_tag)
        copied = templates.new_version(
            template,
            new_tag,
            found.template,
            params.get("comment", found.comment),
            dict(found.headers),
            dict(found.compiled),
        )
        if replaced is not None and replaced.active:
            template.activate(new_tag)
        shown = template.describe()
        shown["version"] = copied.describe()
        return {
            "message": "version has been copied",
            "version": copied.describe(),
            "template": shown,
        }, 200

    return {
        "collection": guarded("/v3/{domain}/templates", collection),
        "one": guarded("/v3/{domain}/templates/{name}", one),
        "versions": guarded("/v3/{domain}/templates/{name}/versions", versions),
        "version": guarded("/v3/{domain}/templates/{name}/versions/{tag}", version),
        "copy": guarded("/v3/{domain}/templates/{name}/versions/{tag}/copy/{new_tag}", copy),
    }
