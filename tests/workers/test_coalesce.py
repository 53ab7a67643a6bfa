"""The coalescer: lookups asked in one turn of the loop are one query; each gets its answer."""

from __future__ import annotations

import asyncio

import pytest

from tidings.workers.coalesce import MAX_KEYS, Coalescer


class Source:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail

    async def fetch_many(self, keys: list[str]) -> dict[str, int]:
        self.calls.append(sorted(keys))
        await asyncio.sleep(0)
        if self.fail:
            raise ConnectionError("the database is gone")
        return {k: len(k) for k in keys if not k.startswith("missing")}


async def test_lookups_of_one_turn_are_one_query_and_each_gets_its_own_answer() -> None:
    source = Source()
    lookups: Coalescer[str, int] = Coalescer(source.fetch_many)
    got = await asyncio.gather(*(lookups.get(k) for k in ["a", "bb", "a", "missing-x", "ccc"]))
    assert got == [1, 2, 1, None, 3]
    assert source.calls == [["a", "bb", "ccc", "missing-x"]]


async def test_a_later_lookup_is_read_again() -> None:
    source = Source()
    lookups: Coalescer[str, int] = Coalescer(source.fetch_many)
    assert await lookups.get("a") == 1
    assert await lookups.get("a") == 1
    assert source.calls == [["a"], ["a"]]


async def test_a_failed_query_fails_every_waiting_caller_and_the_next_one_asks_again() -> None:
    source = Source(fail=True)
    lookups: Coalescer[str, int] = Coalescer(source.fetch_many)
    results = await asyncio.gather(lookups.get("a"), lookups.get("b"), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    source.fail = False
    assert await lookups.get("b") == 1
    assert source.calls == [["a", "b"], ["b"]]


async def test_many_keys_are_split_into_bounded_queries() -> None:
    source = Source()
    lookups: Coalescer[str, int] = Coalescer(source.fetch_many)
    keys = [f"k{i}" for i in range(MAX_KEYS + 10)]
    got = await asyncio.gather(*(lookups.get(k) for k in keys))
    assert got == [len(k) for k in keys]
    assert sorted(len(c) for c in source.calls) == [10, MAX_KEYS]


@pytest.mark.parametrize("n", [1, 3])
async def test_a_cancelled_caller_does_not_disturb_the_others(n: int) -> None:
    source = Source()
    lookups: Coalescer[str, int] = Coalescer(source.fetch_many)
    doomed = asyncio.ensure_future(lookups.get("zz"))
    others = [asyncio.ensure_future(lookups.get("a")) for _ in range(n)]
    await asyncio.sleep(0)
    doomed.cancel()
    assert await asyncio.gather(*others) == [1] * n
