"""The suppression list API: ``GET /suppressions``, ``DELETE /suppressions/{address}``.

Deleting an address also deletes it from the lists every configured provider keeps itself
(Mailgun: the domain's bounces, unsubscribes and complaints), so that the next send is not
dropped there and the next import does not bring it back. When a provider cannot be reached
(or refuses), nothing is removed from Tidings' list and the answer is a 502 that names the
provider and why: the address stays suppressed everywhere it still is, and the same DELETE
can simply be tried again.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import ValidationError

from tidings.api.provider_tools import ProviderUnreachableError
from tidings.errors import NotFound
from tidings.providers.base import ProviderError
from tidings.providers.registry import Providers, UnknownProvider
from tidings.runtime import Runtime, runtime
from tidings.store import providers, suppressions

router = APIRouter(prefix="/suppressions", tags=["suppressions"])


@router.get("")
async def list_suppressions(
    rt: Runtime = Depends(runtime),
    cursor: str | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
) -> dict[str, Any]:
    async with rt.db.read() as conn:
        rows = await suppressions.list_all(conn, limit=limit + 1, after=cursor)
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "paging": {"cursor": rows[-1].address if more else None, "more": more},
        "results": [r.as_dict() for r in rows],
    }


@router.get("/{address}")
async def get_suppression(address: str, rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    async with rt.db.read() as conn:
        found = await suppressions.get(conn, address)
    if found is None:
        raise NotFound()
    return found.as_dict()


@router.delete("/{address}", status_code=204)
async def delete_suppression(
    address: str, request: Request, rt: Runtime = Depends(runtime)
) -> Response:
    """Remove ``address`` at every provider that keeps a list, then from Tidings' list."""
    at_providers = await _remove_at_providers(rt, request.app.state.providers, address)
    async with rt.db.write() as conn:
        removed = await suppressions.remove(conn, address)
    if not removed and not at_providers:
        raise NotFound()
    return Response(status_code=204)


async def _remove_at_providers(rt: Runtime, live: Providers, address: str) -> list[str]:
    """Where ``address`` was removed (``Mailgun mg.example.com bounces``); raises a 502
    naming every provider that could not be changed."""
    async with rt.db.read() as conn:
        stored = await providers.list_all(conn)
    seen: set[tuple[str, str, str]] = set()
    removed: list[str] = []
    failures: list[str] = []
    for provider in stored:
        try:
            impl = live.get(provider.provider)
            lists = impl.suppressions
            if lists is None:
                continue
            config = impl.parse_settings(provider.settings).to_config()
        except (UnknownProvider, ValidationError):
            continue
        key = (provider.provider, config.target, config.domain or "")
        if key in seen:
            continue
        seen.add(key)
        where = f"{impl.name} {config.domain or config.target}"
        try:
            names = await lists.remove(config, address)
        except ProviderError as exc:
            failures.append(f"{where} ({provider.id}): {exc}")
            continue
        removed += [f"{where} {name}" for name in names]
    if failures:
        done = f" It was removed from: {', '.join(removed)}." if removed else ""
        raise ProviderUnreachableError(
            f"{address} is still on Tidings' suppression list: it could not be removed from "
            f"the provider's own lists at {'; '.join(failures)}.{done} Try the DELETE again "
            "once the provider answers."
        )
    return removed
