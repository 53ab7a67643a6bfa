"""Audience expansion over many profiles: time and peak Python memory of
``store.audiences.members`` (keyset pages of profiles, the filter evaluated in Python),
against loading every profile at once and filtering the list (the baseline it avoids).

    python bench/audience_members.py [--profiles 100000] [--database-url URL]

Writes ``bench/results/audience_members.json`` (one entry per backend).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tidings.domain.audiences import matches, parse_filter
from tidings.store import audiences
from tidings.store.clock import utcnow
from tidings.store.database import Database
from tidings.store.tables import profiles

FILTER: Any = {
    "operator": "AND",
    "filters": [
        {"operator": "EQ", "path": "location.city", "value": "Oakland"},
        {
            "operator": "OR",
            "filters": [
                {"operator": "GTE", "path": "age", "value": "40"},
                {"operator": "INCLUDES", "path": "tags", "value": ["vip"]},
            ],
        },
    ],
}


def profile_of(i: int) -> dict[str, Any]:
    return {
        "email": f"user{i}@acme.test",
        "name": f"User {i}",
        "age": 18 + i % 60,
        "location": {"city": "Oakland" if i % 3 else "Berkeley", "zip": f"{94600 + i % 99}"},
        "tags": ["vip"] if i % 11 == 0 else ["regular"],
        "bio": "x" * 200,
    }


async def measure(url: str, count: int) -> dict[str, Any]:
    db = Database(url)
    await db.upgrade()
    try:
        now = utcnow()
        async with db.write() as conn:
            for start in range(0, count, 5000):
                await conn.execute(
                    profiles.insert(),
                    [
                        {
                            "user_id": f"u{i:07}",
                            "profile": profile_of(i),
                            "preferences": {},
                            "updated": now,
                        }
                        for i in range(start, min(count, start + 5000))
                    ],
                )
            await audiences.update(
                conn, "bench", name="bench", description="", rule=parse_filter(FILTER)
            )
        tracemalloc.start()
        began = time.perf_counter()
        async with db.read() as conn:
            found = await audiences.members(conn, "bench", limit=count)
        paged_s = time.perf_counter() - began
        paged_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        members = len(found)
        del found

        tracemalloc.start()
        began = time.perf_counter()
        rule = parse_filter(FILTER)
        async with db.read() as conn:
            rows = (await conn.execute(sa.select(profiles.c.user_id, profiles.c.profile))).all()
        everything = [r.user_id for r in rows if matches(rule, r.profile)]
        whole_s = time.perf_counter() - began
        whole_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert len(everything) == members
        return {
            "backend": url.split(":")[0],
            "profiles": count,
            "members": members,
            "paged_s": round(paged_s, 3),
            "paged_peak_mb": round(paged_peak / 2**20, 1),
            "all_at_once_s": round(whole_s, 3),
            "all_at_once_peak_mb": round(whole_peak / 2**20, 1),
        }
    finally:
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--database-url", default=None, help="an empty database (default: SQLite)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        result = asyncio.run(measure(url, args.profiles))
    print(json.dumps(result, indent=2))
    # One entry per backend, so a run on each keeps both figures.
    out = Path(__file__).parent / "results" / "audience_members.json"
    kept: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    kept[result["backend"]] = result
    out.write_text(json.dumps(kept, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
