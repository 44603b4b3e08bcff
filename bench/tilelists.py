"""Seeded request lists over the Deep Zoom tile grid (pure functions).

A tile is ``(level, col, row)`` in Deep Zoom numbering: level ``max`` is full
resolution, ``max = ceil(log2(max(w, h)))``, each level below is half (ceil).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

Tile = tuple[int, int, int]


@dataclass(frozen=True)
class DziLevel:
    level: int
    width: int
    height: int
    cols: int
    rows: int


def dzi_levels(width: int, height: int, tile: int = 256) -> list[DziLevel]:
    top = math.ceil(math.log2(max(width, height)))
    out = []
    w, h = width, height
    for level in range(top, -1, -1):
        out.append(DziLevel(level, w, h, math.ceil(w / tile), math.ceil(h / tile)))
        w, h = max(1, math.ceil(w / 2)), max(1, math.ceil(h / 2))
    return out[::-1]


def min_full_level(width: int, height: int, tile: int = 256) -> int:
    """Lowest Deep Zoom level whose longer side is still >= one tile.

    Levels below it (a few single tiles) are skipped: large_image has no tile
    there and IIPImage answers them with its smallest stored level."""
    longest = max(width, height)
    return math.ceil(math.log2(longest)) - math.ceil(math.log2(longest / tile))


def panning(width: int, height: int, n: int, seed: int, tile: int = 256,
            viewport: tuple[int, int] = (1600, 1000)) -> list[Tile]:
    """A viewer wandering over the top three levels: each view requests the
    tiles it has not seen yet, nearest the viewport centre first."""
    rng = random.Random(seed)
    levels = dzi_levels(width, height, tile)[-3:]
    li = rng.randrange(3)
    lv = levels[li]
    cx, cy = rng.uniform(0, lv.width), rng.uniform(0, lv.height)
    angle = rng.uniform(0, 2 * math.pi)
    seen: set[Tile] = set()
    out: list[Tile] = []
    vw, vh = viewport
    for _ in range(n * 10):
        if len(out) >= n:
            break
        lv = levels[li]
        c0, c1 = max(0, int((cx - vw / 2) // tile)), min(lv.cols - 1, int((cx + vw / 2) // tile))
        r0, r1 = max(0, int((cy - vh / 2) // tile)), min(lv.rows - 1, int((cy + vh / 2) // tile))
        view = [(lv.level, c, r) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)]
        view = [t for t in view if t not in seen]
        view.sort(key=lambda t: ((t[1] + 0.5) * tile - cx) ** 2 + ((t[2] + 0.5) * tile - cy) ** 2)
        seen.update(view)
        out.extend(view)
        if rng.random() < 0.12:  # zoom in or out around the centre
            nli = min(2, max(0, li + rng.choice((-1, 1))))
            scale = 2.0 ** (nli - li)
            cx, cy, li = cx * scale, cy * scale, nli
        else:  # pan half a viewport, direction drifting slowly
            angle += rng.gauss(0, 0.6)
            cx += math.cos(angle) * vw / 2
            cy += math.sin(angle) * vh / 2
            lv = levels[li]
            if not 0 <= cx <= lv.width:
                angle = math.pi - angle
                cx = min(max(cx, 0), lv.width)
            if not 0 <= cy <= lv.height:
                angle = -angle
                cy = min(max(cy, 0), lv.height)
    return out[:n]


def uniform(width: int, height: int, n: int, seed: int, tile: int = 256) -> list[Tile]:
    """n distinct tiles drawn uniformly from every tile of every (full) level."""
    levels = [lv for lv in dzi_levels(width, height, tile)
              if lv.level >= min_full_level(width, height, tile)]
    counts = [lv.cols * lv.rows for lv in levels]
    total = sum(counts)
    rng = random.Random(seed)
    out = []
    for idx in rng.sample(range(total), min(n, total)):
        for lv, cnt in zip(levels, counts, strict=True):
            if idx < cnt:
                out.append((lv.level, idx % lv.cols, idx // lv.cols))
                break
            idx -= cnt
    return out


def iiif_regions(width: int, height: int, n: int, seed: int, aligned: bool,
                 tile: int = 256, max_downsample: int = 16) -> list[str]:
    """IIIF ``region/size`` pairs.  Aligned: exactly one 256 px tile of a x2
    level (what a IIIF tiled viewer asks).  Unaligned: arbitrary offsets and
    sizes, scaled to a 256-512 px output."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        ds = 2 ** rng.randrange(int(math.log2(max_downsample)) + 1)
        if aligned:
            span = tile * ds
            x = rng.randrange(math.ceil(width / span)) * span
            y = rng.randrange(math.ceil(height / span)) * span
            w, h = min(span, width - x), min(span, height - y)
            out.append(f"{x},{y},{w},{h}/{math.ceil(w / ds)},")
        else:
            w = h = min(rng.randrange(300, 1500) * ds // 2, width, height)
            x, y = rng.randrange(0, width - w + 1), rng.randrange(0, height - h + 1)
            out.append(f"{x},{y},{w},{h}/{min(w, rng.randrange(256, 513))},")
    return out
