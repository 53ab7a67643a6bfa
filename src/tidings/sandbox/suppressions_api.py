"""Mailgun's suppressions API for the sandbox: ``/v3/{domain}/bounces``, ``unsubscribes``,
``complaints`` and ``whitelists`` (the allowlist).

For each list: ``GET`` pages alphabetically (``limit``, ``page``, ``address``, ``term``)
with Mailgun's ``paging`` URLs; ``GET .../{address}`` one entry; ``POST`` one entry (form)
or up to 1000 (a JSON list); ``POST .../import`` a CSV file (multipart); ``DELETE
.../{address}`` one; ``DELETE`` the list. The state and the rules are in
:mod:`tidings.sandbox.suppressions`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from tidings.sandbox.auth import ApiKeyCheck
from tidings.sandbox.core import Sandbox
from tidings.sandbox.errors import MailgunError, domain_not_found, forbidden, json_response
from tidings.sandbox.messages_api import Endpoint
from tidings.sandbox.suppressions import (
    ALL_TAGS,
    ALLOWLIST,
    BOUNCES,
    COMPLAINTS,
    UNSUBSCRIBES,
    Suppressions,
)
from tidings.sandbox.urls import api_base

LISTS = (BOUNCES, UNSUBSCRIBES, COMPLAINTS, ALLOWLIST)
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_RECORDS = 1000
PAGES = ("first", "last", "next", "previous")

# Mailgun's words for each list (its documented texts; see docs/sandbox.md for guesses).
_NOT_FOUND = {
    BOUNCES: "Address not found in bounces table",
    UNSUBSCRIBES: "Address not found in unsubscribers table",
    COMPLAINTS: "No spam complaints found for this address",
    ALLOWLIST: "Address/Domain not found in allowlists table",
}
_REMOVED = {
    BOUNCES: "Bounced address has been removed",
    UNSUBSCRIBES: "Unsubscribe event has been removed",
    COMPLAINTS: "Spam complaint has been removed",
    ALLOWLIST: "Allowlist address/domain has been removed",
}
_ALL_REMOVED = {
    BOUNCES: "Bounced addresses for this domain have been removed",
    UNSUBSCRIBES: "Unsubscribe addresses for this domain have been removed",
    COMPLAINTS: "Complaint addresses for this domain have been removed",
    ALLOWLIST: "Allowlist addresses/domains for this domain have been removed",
}
_ADDED_ONE = {
    BOUNCES: "Address has been added to the bounces table",
    UNSUBSCRIBES: "Address has been added to the unsubscribes table",
    COMPLAINTS: "Address has been added to the complaints table",
    ALLOWLIST: "Address/Domain has been added to the allowlists table",
}
_ADDED_MANY = {
    BOUNCES: "{n} addresses have been added to the bounces table",
    UNSUBSCRIBES: "{n} addresses have been added to the unsubscribes table",
    COMPLAINTS: "{n} complaint addresses have been added to the complaints table",
    ALLOWLIST: "{n} addresses/domains have been added to the allowlists table",
}
IMPORTED = "file uploaded successfully for processing. standby..."

Record = dict[str, Any]
Handler = Callable[[Request, str, str], Awaitable[tuple[int, Any]]]


def _valid_address(value: str) -> bool:
    local, at, domain = value.partition("@")
    return bool(at and local and "." in domain and " " not in value and "@" not in domain)


def _timestamp(record: Record) -> float | None:
    raw = record.get("created_at")
    if raw in (None, ""):
        return None
    try:
        return parsedate_to_datetime(str(raw)).timestamp()
    except (TypeError, ValueError, IndexError):
        message = f"'created_at' parameter is not a valid RFC 2822 date: {raw}"
        raise MailgunError(400, message) from None


def _tags(record: Record) -> list[str]:
    tags = record.get("tags")
    if isinstance(tags, list):
        found = [str(t) for t in tags if str(t)]
    elif isinstance(tags, str) and tags:
        found = [t.strip() for t in tags.split(",") if t.strip()]
    else:
        found = []
    tag = record.get("tag")
    if isinstance(tag, str) and tag:
        found.append(tag)
    return found or [ALL_TAGS]


def _apply(lists: Suppressions, domain: str, name: str, record: Record) -> str:
    """Add one record to a list; returns the address (or domain) it is about."""
    if name == ALLOWLIST:
        address = str(record.get("address") or "").strip()
        value_domain = str(record.get("domain") or "").strip()
        if address:
            if not _valid_address(address):
                raise MailgunError(400, "'address' parameter is not a valid address")
            lists.add_allowed(domain, address, "address", str(record.get("reason") or ""))
            return address.lower()
        if not value_domain or "." not in value_domain or "@" in value_domain:
            raise MailgunError(400, "'address' or 'domain' parameter is missing")
        lists.add_allowed(domain, value_domain, "domain", str(record.get("reason") or ""))
        return value_domain.lower()
    address = str(record.get("address") or "").strip()
    if not address:
        raise MailgunError(400, "'address' parameter is missing")
    if not _valid_address(address):
        raise MailgunError(400, "'address' parameter is not a valid address")
    at = _timestamp(record)
    if name == BOUNCES:
        code = str(record.get("code") or "550")
        if not code.isdigit():
            raise MailgunError(400, f"'code' parameter is not a valid SMTP code: {code}")
        lists.add_bounce(domain, address, code, str(record.get("error") or ""), at)
    elif name == UNSUBSCRIBES:
        lists.add_unsubscribe(domain, address, _tags(record), at)
    else:
        lists.add_complaint(domain, address, at)
    return address.lower()


async def _records(request: Request) -> tuple[list[Record], bool]:
    """The records of a POST and whether they came as a JSON list (many)."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            raise MailgunError(400, "Request body is not a valid JSON") from None
        if isinstance(body, dict):
            return [body], False
        if not isinstance(body, list) or not all(isinstance(r, dict) for r in body):
            raise MailgunError(400, "Request body must be a JSON list of objects")
        if len(body) > MAX_RECORDS:
            raise MailgunError(400, f"Too many records, max is {MAX_RECORDS}")
        return body, True
    if content_type.startswith("multipart/form-data"):
        async with request.form() as form:
            items = [(k, v) for k, v in form.multi_items() if not isinstance(v, UploadFile)]
    else:
        text = (await request.body()).decode("utf-8", "replace")
        items = parse_qsl(text, keep_blank_values=True)
    record: Record = {}
    for key, value in items:
        if key in ("tag", "tags") and key in record:
            record[key] = f"{record[key]},{value}"
        else:
            record[key] = value
    return [record], False


async def _csv_rows(request: Request) -> list[Record]:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise MailgunError(400, "Content-Type must be multipart/form-data")
    async with request.form() as form:
        # Mailgun documents the field ``file``; the official SDK's examples send others
        # (``complaints_csv``, ``unsubscribe_csv``): the first file is the list.
        upload = next((v for _k, v in form.multi_items() if isinstance(v, UploadFile)), None)
        if upload is None:
            raise MailgunError(400, "file parameter is missing")
        data = await upload.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise MailgunError(400, "file is not a UTF-8 CSV file") from None
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or not (
        "address" in reader.fieldnames or "domain" in reader.fieldnames
    ):
        raise MailgunError(400, "CSV file must have an 'address' column header")
    return [{k: (v or "").strip() for k, v in row.items() if k} for row in reader]


def suppressions_endpoints(sandbox: Sandbox) -> dict[tuple[str, str], Endpoint]:
    """Endpoints by (list, ``collection`` | ``one`` | ``import``)."""
    store = sandbox.store
    lists = store.suppressions
    auth = ApiKeyCheck(sandbox.settings.api_key)

    def endpoint(name: str, template: str, body: Handler) -> Endpoint:
        async def handle(request: Request) -> Response:
            route = f"{request.method} /v3/{{domain}}/{name}{template}"
            if not auth.allows(request.headers.get("authorization")):
                store.count_request(route, 401)
                return forbidden()
            domain: str = request.path_params["domain"]
            try:
                if domain not in store.domains:
                    raise domain_not_found(domain)
                status, answer = await body(request, domain, name)
            except MailgunError as error:
                store.count_request(route, error.status)
                return error.response()
            store.count_request(route, status)
            return json_response(answer, status)

        return handle

    async def collection(request: Request, domain: str, name: str) -> tuple[int, Any]:
        if request.method == "GET":
            return 200, _list_page(request, lists, domain, name)
        if request.method == "DELETE":
            lists.of(domain).table(name).clear()
            return 200, {"message": _ALL_REMOVED[name]}
        records, many = await _records(request)
        added = [_apply(lists, domain, name, record) for record in records]
        if many:
            return 200, {"message": _ADDED_MANY[name].format(n=len(added))}
        if name == ALLOWLIST:
            entry = lists.of(domain).allowlist[added[0]]
            return 200, {"message": _ADDED_ONE[name], "type": entry.kind, "value": entry.value}
        return 200, {"message": _ADDED_ONE[name], "address": added[0]}

    async def one(request: Request, domain: str, name: str) -> tuple[int, Any]:
        address = request.path_params["address"].strip().lower()
        table = lists.of(domain).table(name)
        entry = table.get(address)
        if entry is None:
            raise MailgunError(404, _NOT_FOUND[name])
        if request.method == "GET":
            return 200, entry.item()
        key = "value" if name == ALLOWLIST else "address"
        tag = request.query_params.get("tag")
        if name == UNSUBSCRIBES and tag:
            # Only that tag; the address stays unsubscribed from its other tags.
            tags = getattr(entry, "tags", [])
            if tag not in tags:
                raise MailgunError(404, _NOT_FOUND[name])
            tags.remove(tag)
            if not tags:
                del table[address]
            return 200, {"message": _REMOVED[name], key: address}
        del table[address]
        return 200, {"message": _REMOVED[name], key: address}

    async def import_csv(request: Request, domain: str, name: str) -> tuple[int, Any]:
        rows = await _csv_rows(request)
        # Mailgun processes the file in the background (202); the sandbox applies it at
        # once, all or nothing, so that a bad row is reported rather than half-applied.
        snapshot = {key: dict(lists.of(domain).table(key)) for key in LISTS}
        try:
            for row in rows:
                if name == ALLOWLIST and row.get("address") and row.get("domain"):
                    raise MailgunError(400, "a row has both an address and a domain")
                _apply(lists, domain, name, row)
        except MailgunError:
            for key, saved in snapshot.items():
                table = lists.of(domain).table(key)
                table.clear()
                table.update(saved)
            raise
        return 202, {"message": IMPORTED}

    return {
        **{(name, "collection"): endpoint(name, "", collection) for name in LISTS},
        **{(name, "one"): endpoint(name, "/{address}", one) for name in LISTS},
        **{(name, "import"): endpoint(name, "/import", import_csv) for name in LISTS},
    }


def _list_page(request: Request, lists: Suppressions, domain: str, name: str) -> Any:
    params = request.query_params
    raw_limit = params.get("limit", str(DEFAULT_LIMIT))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
        raise MailgunError(400, f"Invalid limit: must be between 1 and {MAX_LIMIT}")
    limit = int(raw_limit)
    page = params.get("page") or "first"
    if page not in PAGES:
        raise MailgunError(400, f"Invalid page: {page}, expected one of {', '.join(PAGES)}")
    pivot = params.get("address")
    term = params.get("term")
    entries = lists.page(domain, name, limit=limit, page=page, pivot=pivot, term=term)
    items = [entry.item() for entry in entries]
    base = f"{api_base(request)}/v3/{domain}/{name}"

    def url(direction: str, address: str | None) -> str:
        query: list[tuple[str, str]] = [("page", direction)]
        if address is not None:
            query.append(("address", address))
        query.append(("limit", str(limit)))
        if term:
            query.append(("term", term))
        return f"{base}?{urlencode(query)}"

    # Mailgun pivots next/previous on the page's last/first address; an empty page keeps
    # the one it was asked with, so following ``next`` past the end stays empty.
    last = entries[-1].address if entries else pivot
    first = entries[0].address if entries else pivot
    return {
        "items": items,
        "paging": {
            "first": url("first", None),
            "last": url("last", None),
            "next": url("next", last or ""),
            "previous": url("previous", first or ""),
        },
    }
