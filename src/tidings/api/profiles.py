"""Courier's Profiles API: ``/profiles/{user_id}`` (GET, POST merge, PUT, PATCH, DELETE)."""

from __future__ import annotations

from typing import Annotated, Any

import jsonpatch
from fastapi import APIRouter, Depends, Path, Response

from tidings.api.schemas import ProfileBody, ProfilePatch
from tidings.domain.recipients import MAX_USER_ID
from tidings.errors import BadRequest, NotFound
from tidings.runtime import Runtime, runtime
from tidings.store import profiles

router = APIRouter(prefix="/profiles", tags=["profiles"])

# A profile's key, as wide as its column (and as a recipient's user_id may be).
UserId = Annotated[str, Path(max_length=MAX_USER_ID)]


@router.get("/{user_id}")
async def get_profile(user_id: UserId, rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    async with rt.db.read() as conn:
        found = await profiles.get(conn, user_id)
    if found is None:
        raise NotFound()
    profile, preferences = found
    return {"profile": profile, "preferences": preferences}


@router.post("/{user_id}")
async def merge_profile(
    user_id: UserId, body: ProfileBody, rt: Runtime = Depends(runtime)
) -> dict[str, str]:
    """Merge into the stored profile; a key whose value is null is removed."""
    async with rt.db.write() as conn:
        found = await profiles.get(conn, user_id)
        current = found[0] if found else {}
        for key, value in body.profile.items():
            if value is None:
                current.pop(key, None)
            else:
                current[key] = value
        await profiles.put(conn, user_id, current)
    return {"status": "SUCCESS"}


@router.put("/{user_id}")
async def replace_profile(
    user_id: UserId, body: ProfileBody, rt: Runtime = Depends(runtime)
) -> dict[str, str]:
    async with rt.db.write() as conn:
        await profiles.put(conn, user_id, {k: v for k, v in body.profile.items() if v is not None})
    return {"status": "SUCCESS"}


@router.patch("/{user_id}")
async def patch_profile(
    user_id: UserId, body: ProfilePatch, rt: Runtime = Depends(runtime)
) -> dict[str, str]:
    """RFC 6902 operations; the profile is created if missing, as at Courier."""
    ops = [op.model_dump(by_alias=True, exclude_none=False) for op in body.patch]
    for op in ops:
        if op.get("from") is None:
            op.pop("from", None)
        if op["op"] in ("remove", "move", "copy") and op.get("value") is None:
            op.pop("value", None)
    async with rt.db.write() as conn:
        found = await profiles.get(conn, user_id)
        current = found[0] if found else {}
        try:
            patched = jsonpatch.apply_patch(current, ops)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise BadRequest(f"patch: {exc}") from None
        if not isinstance(patched, dict):
            raise BadRequest("patch: the result must be a JSON object")
        await profiles.put(conn, user_id, patched)
    return {"status": "SUCCESS"}


@router.delete("/{user_id}", status_code=204)
async def delete_profile(user_id: UserId, rt: Runtime = Depends(runtime)) -> Response:
    async with rt.db.write() as conn:
        await profiles.delete(conn, user_id)
    return Response(status_code=204)
