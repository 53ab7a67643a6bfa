"""Mailgun's domains API: ``/v3/domains`` and ``/v4/domains`` (list with ``limit``/``skip``,
create, get, update, delete, verify), the tracking settings
(``/v3/domains/{name}/tracking[/open|click|unsubscribe]``) and the sending queues
(``/v3/domains/{name}/sending_queues``).

The domains the sandbox is configured with exist, active, from the start; a created domain
is ``unverified`` (it may not send) until ``PUT .../verify``, which always succeeds here:
the sandbox has no DNS to look at.
"""

from __future__ import annotations

import re
import time

from starlette.requests import Request

from tidings.sandbox.apiroute import (
    Fields,
    boolean,
    integer,
    mailgun_endpoint,
    one,
    query_fields,
    read_fields,
    refuse_unknown,
)
from tidings.sandbox.core import Sandbox
from tidings.sandbox.domains import (
    CLICK_MODES,
    SPAM_ACTIONS,
    WEB_SCHEMES,
    DomainRecord,
    generated_dkim_key,
    sending_queues,
)
from tidings.sandbox.errors import MailgunError, domain_not_found
from tidings.sandbox.messages_api import Endpoint
from tidings.sandbox.state import JSON

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_SELECTOR = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_PREFIX = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_LIST_PARAMS = ("limit", "skip", "state", "sort", "authority", "search")
_STATES = ("active", "unverified", "disabled")
_SORTS = ("name", "name:asc", "name:desc")
# What create and update model; anything else is refused by name.
_CREATE_PARAMS = (
    "name",
    "smtp_password",
    "spam_action",
    "wildcard",
    "force_dkim_authority",
    "dkim_key_size",
    "dkim_selector",
    "web_scheme",
    "web_prefix",
    "require_tls",
    "skip_verification",
    "ips",
    "pool_id",
)
_UPDATE_PARAMS = (
    "smtp_password",
    "spam_action",
    "wildcard",
    "web_scheme",
    "web_prefix",
    "require_tls",
    "skip_verification",
)
MAX_LIMIT = 1000


def domains_endpoints(sandbox: Sandbox) -> dict[str, Endpoint]:
    store = sandbox.store

    def record_of(request: Request) -> DomainRecord:
        name: str = request.path_params["name"]
        record = store.domain_records.get(name.lower())
        if record is None:
            raise domain_not_found(name)
        return record

    async def collection(request: Request) -> tuple[object, int]:
        if request.method == "GET":
            return list_domains(query_fields(request)), 200
        return create(await read_fields(request)), 200

    def list_domains(fields: Fields) -> JSON:
        refuse_unknown(fields, _LIST_PARAMS)
        limit = integer(one(fields, "limit"), "limit", 100, 1, MAX_LIMIT)
        skip = integer(one(fields, "skip"), "skip", 0, 0, 10**9)
        state = one(fields, "state")
        if state is not None and state not in _STATES:
            raise MailgunError(400, f"Invalid state: '{state}' (active, unverified, disabled)")
        sort = one(fields, "sort")
        if sort is not None and sort not in _SORTS:
            raise MailgunError(400, f"Invalid sort: '{sort}' (name, name:asc, name:desc)")
        search = (one(fields, "search") or "").lower()
        authority = one(fields, "authority")
        records = list(store.domain_records.values())
        if state is not None:
            records = [r for r in records if r.state == state]
        elif authority:
            # Every sandbox domain is its own DKIM authority.
            records = [r for r in records if r.name == authority.lower()]
        if search:
            records = [r for r in records if search in r.name]
        if sort is None:
            # Without a sort, Mailgun lists in reverse creation order.
            records.sort(key=lambda r: (r.created_at, r.name), reverse=True)
        else:
            records.sort(key=lambda r: r.name, reverse=sort == "name:desc")
        page = records[skip : skip + limit]
        return {"total_count": len(records), "items": [r.describe() for r in page]}

    def create(fields: Fields) -> JSON:
        refuse_unknown(fields, _CREATE_PARAMS)
        name = (one(fields, "name") or "").strip().lower()
        if not name:
            raise MailgunError(400, "name parameter is missing")
        if not _valid_domain(name):
            raise MailgunError(400, f"'{name}' is not a valid domain name")
        if name in store.domain_records:
            raise MailgunError(400, "This domain name is already taken")
        for unassignable in ("ips", "pool_id"):
            value = one(fields, unassignable)
            if value:
                raise MailgunError(400, f"{unassignable} '{value}' is not assigned to this account")
        record = DomainRecord(name, created_at=time.time(), state="unverified")
        _apply(record, fields)
        force = one(fields, "force_dkim_authority")
        if force is not None:
            record.force_dkim_authority = boolean(force, "force_dkim_authority")
        size = one(fields, "dkim_key_size")
        if size is not None:
            if size not in ("1024", "2048"):
                raise MailgunError(400, f"Invalid dkim_key_size: '{size}' (1024 or 2048)")
            record.dkim_key_size = int(size)
        selector = one(fields, "dkim_selector")
        if selector is not None:
            if not _SELECTOR.match(selector):
                raise MailgunError(400, f"Invalid dkim_selector: '{selector}'")
            record.dkim_selector = selector
        record.dkim_public_key = generated_dkim_key(name, record.dkim_key_size)
        store.add_domain(record)
        return record.answer("Domain has been created")

    async def one_domain(request: Request) -> tuple[object, int]:
        record = record_of(request)
        if request.method == "GET":
            return record.answer(), 200
        if request.method == "PUT":
            fields = await read_fields(request)
            refuse_unknown(fields, _UPDATE_PARAMS)
            if not fields:
                raise MailgunError(400, "Nothing to update: give at least one parameter")
            _apply(record, fields)
            return {"message": "Domain has been updated", "domain": record.describe()}, 200
        store.remove_domain(record.name)
        return {"message": "Domain has been deleted"}, 200

    async def verify(request: Request) -> tuple[object, int]:
        record = record_of(request)
        refuse_unknown(await read_fields(request) + query_fields(request), ())
        if record.state == "unverified":
            record.state = "active"  # the sandbox's DNS is always right
        return record.answer("Domain DNS records have been updated"), 200

    async def tracking(request: Request) -> tuple[object, int]:
        record = record_of(request)
        refuse_unknown(query_fields(request), ())
        return record.tracking_answer(), 200

    async def tracking_update(request: Request) -> tuple[object, int]:
        record = record_of(request)
        kind: str = request.path_params["kind"]
        if kind not in ("open", "click", "unsubscribe"):
            raise MailgunError(404, f"Unknown tracking setting: {kind} (open, click, unsubscribe)")
        fields = await read_fields(request)
        settings = record.tracking
        if kind == "open":
            refuse_unknown(fields, ("active", "place_at_the_top"))
            active = one(fields, "active")
            if active is not None:
                settings.open = boolean(active, "active")
            top = one(fields, "place_at_the_top")
            if top is not None:
                settings.open_at_top = boolean(top, "place_at_the_top")
            answer: JSON = {"open": settings.open_json()}
        elif kind == "click":
            refuse_unknown(fields, ("active",))
            active = one(fields, "active")
            if active is not None:
                mode = active.strip().lower()
                mode = {"yes": "true", "no": "false"}.get(mode, mode)
                if mode not in CLICK_MODES:
                    raise MailgunError(400, f"Invalid active: '{active}' (true, false, htmlonly)")
                settings.click = mode
            answer = {"click": settings.click_json()}
        else:
            refuse_unknown(fields, ("active", "html_footer", "text_footer"))
            active = one(fields, "active")
            if active is not None:
                settings.unsubscribe = boolean(active, "active")
            html_footer = one(fields, "html_footer")
            if html_footer is not None:
                settings.html_footer = html_footer
            text_footer = one(fields, "text_footer")
            if text_footer is not None:
                settings.text_footer = text_footer
            answer = {"unsubscribe": settings.unsubscribe_json()}
        return {"message": "Domain tracking settings have been updated", **answer}, 200

    async def queues(request: Request) -> tuple[object, int]:
        record = record_of(request)
        refuse_unknown(query_fields(request), ())
        return sending_queues(record, sandbox.faults.settings.account_disabled), 200

    endpoints: dict[str, Endpoint] = {}
    for version in ("v3", "v4"):
        base = f"{{method}} /{version}/domains"
        endpoints[f"{version}_collection"] = mailgun_endpoint(sandbox, base, collection)
        endpoints[f"{version}_one"] = mailgun_endpoint(sandbox, base + "/{name}", one_domain)
        endpoints[f"{version}_verify"] = mailgun_endpoint(sandbox, base + "/{name}/verify", verify)
    endpoints["tracking"] = mailgun_endpoint(
        sandbox, "{method} /v3/domains/{name}/tracking", tracking
    )
    endpoints["tracking_update"] = mailgun_endpoint(
        sandbox, "{method} /v3/domains/{name}/tracking/{kind}", tracking_update
    )
    endpoints["sending_queues"] = mailgun_endpoint(
        sandbox, "{method} /v3/domains/{name}/sending_queues", queues
    )
    return endpoints


def _valid_domain(name: str) -> bool:
    labels = name.split(".")
    return len(name) <= 253 and len(labels) >= 2 and all(_LABEL.match(label) for label in labels)


def _apply(record: DomainRecord, fields: Fields) -> None:
    """The settings create and update share, validated."""
    spam_action = one(fields, "spam_action")
    if spam_action is not None:
        if spam_action not in SPAM_ACTIONS:
            raise MailgunError(400, f"Invalid spam_action: '{spam_action}' (disabled, block, tag)")
        record.spam_action = spam_action
    scheme = one(fields, "web_scheme")
    if scheme is not None:
        if scheme not in WEB_SCHEMES:
            raise MailgunError(400, f"Invalid web_scheme: '{scheme}' (http or https)")
        record.web_scheme = scheme
    prefix = one(fields, "web_prefix")
    if prefix is not None:
        if not _PREFIX.match(prefix):
            raise MailgunError(400, f"Invalid web_prefix: '{prefix}'")
        record.web_prefix = prefix
    for flag in ("wildcard", "require_tls", "skip_verification"):
        raw = one(fields, flag)
        if raw is not None:
            setattr(record, flag, boolean(raw, flag))
    password = one(fields, "smtp_password")
    if password is not None:
        if not 5 <= len(password) <= 32:
            raise MailgunError(400, "smtp_password must be 5 to 32 characters long")
        record.smtp_password = password
