"""Tile-by-tile processing shared by the apps that read a slide at full (or one)
resolution: the grid of tile cores, the window read around a core with an
overlap margin, and the map over tiles with progress and cancel.

Two maps:

- `map_tiles`: every tile's result in a list (local threads), for apps that
  need all tiles at once (the pixel classifier joins label tiles);
- `iter_tiles`: tile results yielded one by one in tile order, with at most a
  few tiles in flight, so a caller that writes results as they come holds a
  bounded number of them whatever the slide's size. It runs on a
  dask.distributed cluster when the run has one (``RunContext.dask``: the
  worker's ``--scheduler``, or a `LocalCluster` in the bench), else on local
  threads. On a cluster the task is the tile *function* (the raster inside
  it pickles as a locator: the store's path, or the server's URL, key and
  image id) and the core rectangle: each cluster worker reads its own pixels
  and sends back only the tile's objects, never pixel arrays.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Any

from .runner import Region, RunContext


def tile_grid(region: Region, tile: int) -> Iterator[Region]:
    """Cores that partition ``region`` (the last row and column may be narrower)."""
    for y in range(region.y, region.y + region.h, tile):
        for x in range(region.x, region.x + region.w, tile):
            yield Region(x, y, min(tile, region.x + region.w - x),
                         min(tile, region.y + region.h - y))


def window(core: Region, margin: int, width: int, height: int) -> Region:
    """``core`` grown by ``margin`` on every side, clipped to a width x height image."""
    x0, y0 = max(0, core.x - margin), max(0, core.y - margin)
    x1, y1 = min(width, core.x + core.w + margin), min(height, core.y + core.h + margin)
    return Region(x0, y0, x1 - x0, y1 - y0)


def owns(core: Region, x: float, y: float) -> bool:
    """Half-open ownership: the cores partition the region, so an object whose
    centroid is (x, y) belongs to exactly one tile."""
    return core.x <= x < core.x + core.w and core.y <= y < core.y + core.h


def map_tiles[T](ctx: RunContext, tiles: list[Region], fn: Callable[[Region], T]) -> list[T]:
    """fn over the tiles, on ``ctx.workers`` threads (the heavy steps of
    scikit-image, scipy and scikit-learn release the GIL), results in tile order
    so that a run gives the same output whatever the thread count; stops at a
    cancel (``ctx.check``) and reports progress per finished tile."""
    return list(_iter_local(ctx, tiles, fn, max(1, len(tiles))))


def cluster_slots(client: Any) -> int:
    """Worker threads of a dask.distributed cluster (at least 1)."""
    info = client.scheduler_info()
    return max(1, sum(w.get("nthreads", 1) for w in info.get("workers", {}).values()))


def shippable(fn: Callable[..., Any]) -> str | None:
    """None if ``fn`` can be sent to cluster workers, else why not."""
    try:
        import cloudpickle

        cloudpickle.dumps(fn)
    except (pickle.PicklingError, TypeError, AttributeError) as e:
        return f"{type(e).__name__}: {e}"
    return None


def iter_tiles[T](ctx: RunContext, tiles: list[Region], fn: Callable[[Region], T],
                  in_flight: int | None = None) -> Iterator[T]:
    """fn's result of each tile, yielded in tile order; ``in_flight`` tiles (default:
    twice the threads or cluster threads) run at once and at most twice that are
    submitted and not yet yielded, so the results held at once do not grow with
    the number of tiles.

    On ``ctx.dask`` (a dask.distributed Client) when ``fn`` pickles; a function
    that does not (a raster without a locator) runs on local threads, logged.
    """
    if ctx.dask is not None:
        why = shippable(fn)
        if why is None:
            yield from _iter_cluster(ctx, tiles, fn, in_flight)
            return
        ctx.log(f"tiles run on local threads: the tile function cannot go to the "
                f"cluster ({why})")
    yield from _iter_local(ctx, tiles, fn, in_flight or 2 * max(1, ctx.workers))


def _iter_local[T](ctx: RunContext, tiles: list[Region], fn: Callable[[Region], T],
                   in_flight: int) -> Iterator[T]:
    if ctx.workers <= 1:
        for n, core in enumerate(tiles):
            ctx.check()
            out = fn(core)
            ctx.progress((n + 1) / len(tiles))
            yield out
        return
    with ThreadPoolExecutor(ctx.workers, thread_name_prefix="tiles") as pool:
        yield from _ordered(ctx, tiles, lambda core: pool.submit(fn, core),
                            lambda pending: wait_futures(pending, return_when=FIRST_COMPLETED)[0],
                            max(1, in_flight))


def _iter_cluster[T](ctx: RunContext, tiles: list[Region], fn: Callable[[Region], T],
                     in_flight: int | None) -> Iterator[T]:
    from distributed import wait as dask_wait

    client = ctx.dask
    slots = cluster_slots(client)
    # The function (raster locator, parameters) travels once; tasks name it.
    [fn_remote] = client.scatter([fn], broadcast=True, hash=False)

    def submit(core: Region) -> Any:
        return client.submit(_call, fn_remote, core, pure=False)

    def first_done(pending: set[Any]) -> set[Any]:
        return set(dask_wait(list(pending), return_when="FIRST_COMPLETED").done)

    try:
        yield from _ordered(ctx, tiles, submit, first_done, in_flight or 2 * slots)
    finally:
        client.cancel([fn_remote])


def _call[T](fn: Callable[[Region], T], core: Region) -> T:
    return fn(core)


def _ordered[T](ctx: RunContext, tiles: list[Region], submit: Callable[[Region], Any],
                first_done: Callable[[set[Any]], set[Any]], in_flight: int) -> Iterator[T]:
    """Keep ``in_flight`` tiles running, at most ``2 * in_flight`` ahead of the next
    one to yield; yield in tile order; cancel what is still pending when stopped
    (cancel, error, close)."""
    futures: dict[int, Any] = {}
    next_submit = next_yield = 0
    try:
        while next_yield < len(tiles):
            # Up to in_flight tiles running, and at most twice that submitted and not
            # yet yielded: a slow tile at the head does not leave workers idle, and
            # the results held at once stay bounded.
            while (next_submit < len(tiles) and next_submit - next_yield < 2 * in_flight
                   and sum(not f.done() for f in futures.values()) < in_flight):
                futures[next_submit] = submit(tiles[next_submit])
                next_submit += 1
            fut = futures[next_yield]
            if not fut.done():
                first_done({f for f in futures.values() if not f.done()})
                ctx.progress((next_yield + sum(f.done() for f in futures.values()))
                             / len(tiles))
                ctx.check()
                continue
            result = fut.result()
            del futures[next_yield]
            next_yield += 1
            ctx.progress((next_yield + sum(f.done() for f in futures.values())) / len(tiles))
            ctx.check()
            yield result
    finally:
        for f in futures.values():
            f.cancel()
