"""Tile-by-tile processing shared by the apps that read a slide at full (or one)
resolution: the grid of tile cores, the window read around a core with an
overlap margin, and the threaded map over tiles with progress and cancel."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed

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
    if ctx.workers <= 1:
        out: list[T] = []
        for n, core in enumerate(tiles):
            ctx.check()
            out.append(fn(core))
            ctx.progress((n + 1) / len(tiles))
        return out
    slots: dict[int, T] = {}
    with ThreadPoolExecutor(ctx.workers, thread_name_prefix="tiles") as pool:
        futures = {pool.submit(fn, core): n for n, core in enumerate(tiles)}
        try:
            for done, fut in enumerate(as_completed(futures), start=1):
                slots[futures[fut]] = fut.result()
                ctx.progress(done / len(tiles))
                ctx.check()
        finally:
            for fut in futures:
                fut.cancel()
    return [slots[n] for n in range(len(tiles))]
