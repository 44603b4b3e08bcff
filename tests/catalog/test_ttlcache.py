"""The catalog's TTL + LRU cache: expiry, per-entry lifetimes, bounds and revocation hooks."""

from __future__ import annotations

from collections.abc import Hashable

from microtome.catalog.ttlcache import TTLCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_after_their_ttl() -> None:
    clock = Clock()
    cache: TTLCache[str] = TTLCache(10, 5.0, clock)
    cache.set("k", "v")
    clock.now += 4.9
    assert cache.get("k") == "v" and "k" in cache
    clock.now += 0.2
    assert cache.get("k") is None and "k" not in cache
    assert cache.get("k", "default") == "default"


def test_an_entry_may_carry_its_own_ttl() -> None:
    clock = Clock()
    cache: TTLCache[str] = TTLCache(10, 5.0, clock)
    cache.set("short", "v", ttl=1.0)
    cache.set("long", "v", ttl=60.0)
    clock.now += 10
    assert cache.get("short") is None and cache.get("long") == "v"


def test_falsy_values_are_cached_values_not_misses() -> None:
    cache: TTLCache[bool | None] = TTLCache(10, 5.0, Clock())
    cache.set("denied", False)
    cache.set("anonymous", None)
    assert "denied" in cache and cache.get("denied", True) is False
    assert "anonymous" in cache and cache.get("anonymous", True) is None


def test_bounded_least_recently_used_first() -> None:
    cache: TTLCache[int] = TTLCache(3, 60.0, Clock())
    for i in range(3):
        cache.set(i, i)
    assert cache.get(0) == 0  # 1 is now the least recently used
    cache.set(3, 3)
    assert len(cache) == 3 and 1 not in cache and 0 in cache


def test_pop_and_clear_tell_listeners_expiry_does_not() -> None:
    clock = Clock()
    cache: TTLCache[int] = TTLCache(10, 5.0, clock)
    told: list[Hashable | None] = []
    cache.on_forget.append(told.append)
    cache.set("a", 1)
    cache.set("b", 2)
    clock.now += 10
    assert cache.get("a") is None and told == []
    cache.pop("b")
    cache.clear()
    assert told == ["b", None]


def test_evict_by_predicate() -> None:
    cache: TTLCache[int] = TTLCache(10, 60.0, Clock())
    for i in range(6):
        cache.set(("image", i), i)
    cache.evict(lambda key: isinstance(key, tuple) and key[1] % 2 == 0)
    assert sorted(k[1] for k in [("image", i) for i in range(6)] if k in cache) == [1, 3, 5]
