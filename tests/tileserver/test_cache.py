"""The tile server's bounded caches: byte-bounded tiles, single-flight opened images."""

from __future__ import annotations

import asyncio

import pytest

from microtome.tileserver.cache import AsyncLRU, Tile, TileCache


def _tile(n: int) -> Tile:
    return Tile(b"x" * n, "image/jpeg")


def test_tile_cache_is_bounded_by_bytes_and_least_recently_used_goes_first() -> None:
    cache = TileCache(800)
    for k in "abcd":
        cache.put(k, _tile(100))
    assert cache.nbytes == 400 and len(cache) == 4
    assert cache.get("a") is not None  # now most recently used
    for k in "efghi":
        cache.put(k, _tile(100))
    assert cache.nbytes <= 800
    assert cache.get("b") is None and cache.get("a") is not None


def test_one_huge_answer_does_not_flush_the_tile_cache() -> None:
    cache = TileCache(800)
    cache.put("a", _tile(100))
    cache.put("big", _tile(101))  # above an eighth of the bound: not kept
    assert cache.get("big") is None and cache.get("a") is not None


def test_replacing_a_tile_counts_its_bytes_once() -> None:
    cache = TileCache(800)
    cache.put("a", _tile(50))
    cache.put("a", _tile(70))
    assert cache.nbytes == 70 and len(cache) == 1
    cache.clear()
    assert cache.nbytes == 0 and len(cache) == 0


async def test_concurrent_misses_share_one_load_and_failures_are_not_cached() -> None:
    lru: AsyncLRU[str] = AsyncLRU(2)
    calls = 0

    async def load() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return "opened"

    assert await asyncio.gather(*(lru.get("k", load) for _ in range(10))) == ["opened"] * 10
    assert calls == 1

    async def fail() -> str:
        raise OSError("gone")

    with pytest.raises(OSError):
        await lru.get("bad", fail)
    assert await lru.get("bad", load) == "opened" and calls == 2


async def test_opened_images_are_bounded_by_count_and_evicted_by_predicate() -> None:
    lru: AsyncLRU[int] = AsyncLRU(2)

    def loader(v: int):  # a tiny coroutine factory
        async def load() -> int:
            return v
        return load

    for i in range(3):
        await lru.get(("img", i), loader(i))
    assert len(lru) == 2
    lru.evict(lambda key: key == ("img", 2))
    assert len(lru) == 1
    assert await lru.get(("img", 2), loader(20)) == 20  # loaded again after eviction
