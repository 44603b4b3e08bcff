"""Region search over a whole slide: score a grid of windows against an example region.

The slide is read at the descriptors' normalised scale (`crops.TARGET_UM`, from
the pyramid level just finer than it) one band of windows at a time, so memory
stays at one band whatever the slide's size.  Windows have the example's size
(clamped to WINDOW_SIDES) and overlap by half; on big slides the step grows until
at most MAX_WINDOWS windows remain, so one search costs a bounded amount of CPU.
Synchronous (pixels and CPU): run `score_rows` in an executor, a few rows at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from microtome.annotations.crops import pick_level
from microtome.pyramid.reader import Pyramid

from .crops import _rgb8, px_per_output
from .descriptors import describe

#: Most windows scored in one search (~25 ms of CPU each: a search stays under ~30 s).
MAX_WINDOWS = 1000
#: Window side limits, in normalised pixels (µm at TARGET_UM = 1).
WINDOW_SIDES = (32, 512)


@dataclass(frozen=True)
class Grid:
    """Windows of `win` normalised pixels every `step`, `factor` level-0 px per normalised
    px, `cols` x `rows` of them from the slide's top-left corner."""

    win: int
    step: int
    factor: float
    cols: int
    rows: int

    def box(self, col: int, row: int) -> tuple[float, float, float, float]:
        """Level-0 [x0, y0, x1, y1] of one window."""
        f = self.factor
        return (col * self.step * f, row * self.step * f,
                (col * self.step + self.win) * f, (row * self.step + self.win) * f)


def plan(width: int, height: int, pixel_size_um: float | None, example_side: float) -> Grid:
    """The grid over a slide of width x height level-0 px for an example whose longer
    side measures `example_side` level-0 px."""
    factor = px_per_output(pixel_size_um)
    w, h = width / factor, height / factor
    win = round(min(max(example_side / factor, WINDOW_SIDES[0]), WINDOW_SIDES[1], w, h))
    step = max(1, win // 2)

    def count(s: int) -> tuple[int, int]:
        return max(1, math.floor((w - win) / s) + 1), max(1, math.floor((h - win) / s) + 1)

    while count(step)[0] * count(step)[1] > MAX_WINDOWS:
        step = math.ceil(step * 1.25)
    cols, rows = count(step)
    return Grid(win, step, factor, cols, rows)


def _band(pyr: Pyramid, grid: Grid, row: int) -> NDArray[np.uint8]:
    """Row `row` of windows as one normalised-scale RGB band (win x all columns)."""
    meta = pyr.meta
    li = pick_level([lv.downsample for lv in meta.levels], grid.factor)
    lv = meta.levels[li]
    d = lv.downsample
    x0, y0, _, y1 = grid.box(0, row)
    x1 = grid.box(grid.cols - 1, row)[2]
    lx, ly = int(x0 // d), int(y0 // d)
    lw = max(1, min(lv.width - lx, math.ceil(x1 / d) - lx))
    lh = max(1, min(lv.height - ly, math.ceil(y1 / d) - ly))
    block = _rgb8(pyr.read_region(li, lx, ly, lw, lh))
    out_w = (grid.cols - 1) * grid.step + grid.win
    img = Image.fromarray(block).resize((out_w, grid.win), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def score_rows(pyr: Pyramid, grid: Grid, query: NDArray[np.floating], rows: range
               ) -> NDArray[np.float32]:
    """Cosine similarity of each window of `rows` to the (unit) query descriptor."""
    out = np.zeros((len(rows), grid.cols), np.float32)
    q = np.asarray(query, dtype=np.float32)
    for i, row in enumerate(rows):
        band = _band(pyr, grid, row)
        for c in range(grid.cols):
            x = c * grid.step
            out[i, c] = float(describe(band[:, x:x + grid.win]) @ q)
    return out


def top_windows(scores: NDArray[np.floating], grid: Grid, n: int
                ) -> list[tuple[tuple[float, float, float, float], float]]:
    """The `n` best windows that do not overlap one another (greedy, best first)."""
    order = np.argsort(-scores, axis=None, kind="stable")
    picked: list[tuple[tuple[float, float, float, float], float]] = []
    for flat in order:
        row, col = divmod(int(flat), grid.cols)
        box = grid.box(col, row)
        if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3]
               for b, _ in picked):
            continue
        picked.append((box, float(scores[row, col])))
        if len(picked) == n:
            break
    return picked
