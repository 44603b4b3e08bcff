"""Write a synthetic Aperio-style pyramidal tiled JPEG (Big)TIFF, streaming.

    python -m microtome.converters.synthetic OUT.tiff [--width W --height H]
        [--from SAMPLE_IMAGE] [--tile 256] [--quality 80] [--mpp 0.25]

Tiles are produced one at a time (constant memory whatever the size): either
a procedural tissue-like pattern, or — with ``--from`` — a real sample
image repeated with mirroring (so edges match and the content looks like
tissue at every scale).  Lower levels (4x, 16x, ...) are computed from the
same source at their own scale, not by reading the level above.  OpenSlide
recognises the result as Aperio SVS (thumbnail, label and macro included).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


class Pattern:
    """Pixel source: f(level-0 rectangle, step) -> RGB block."""

    def __init__(self, sample: np.ndarray | None = None) -> None:
        self.sample = None
        if sample is not None:
            s = sample[..., :3]
            # Mirror into a 2x2 period so repeating it has no seams.
            top = np.concatenate([s, s[:, ::-1]], axis=1)
            self.sample = np.ascontiguousarray(np.concatenate([top, top[::-1]], axis=0))
            self._cache: dict[int, np.ndarray] = {1: self.sample}

    def _period(self, step: int) -> np.ndarray:
        assert self.sample is not None
        if step not in self._cache:
            s = self.sample
            h, w = (s.shape[0] // step) * step, (s.shape[1] // step) * step
            small = s[:h, :w].reshape(h // step, step, w // step, step, 3).mean(axis=(1, 3))
            self._cache[step] = small.astype(np.uint8)
        return self._cache[step]

    def block(self, x: int, y: int, w: int, h: int, step: int) -> np.ndarray:
        """Pixels of a level with downsample ``step`` at level coordinates (x, y)."""
        if self.sample is not None:
            p = self._period(step)
            ph, pw = p.shape[:2]
            ys = (np.arange(y, y + h) % ph)
            xs = (np.arange(x, x + w) % pw)
            return p[ys[:, None], xs[None, :]]
        yy, xx = np.mgrid[y:y + h, x:x + w].astype(np.float32) * step
        low = (np.sin(xx / 3100.0) + np.sin(yy / 2300.0 + 1.3) + np.sin((xx + yy) / 5200.0))
        tissue = low > 0.4
        tex = 0.5 + 0.5 * np.sin(xx / 9.0) * np.cos(yy / 7.0)
        nuclei = (np.sin(xx / 23.0 + np.sin(yy / 31.0) * 3) * np.sin(yy / 19.0)) > 0.8
        out = np.empty((h, w, 3), np.uint8)
        out[...] = (242, 240, 244)
        pink = np.stack([225 - 30 * tex, 150 - 40 * tex, 200 - 20 * tex], axis=-1)
        purple = np.array([95, 60, 150], np.float32)
        col = np.where(nuclei[..., None], purple, pink)
        out[tissue] = col[tissue].astype(np.uint8)
        return out


def _tiles(pat: Pattern, width: int, height: int, tile: int, step: int) -> Iterator[np.ndarray]:
    for ty in range(0, height, tile):
        for tx in range(0, width, tile):
            blk = pat.block(tx, ty, min(tile, width - tx), min(tile, height - ty), step)
            if blk.shape[:2] != (tile, tile):
                full = np.full((tile, tile, 3), 255, np.uint8)
                full[:blk.shape[0], :blk.shape[1]] = blk
                blk = full
            yield np.ascontiguousarray(blk)


def _small(pat: Pattern, width: int, height: int, max_side: int) -> np.ndarray:
    step = max(1, -(-max(width, height) // max_side))
    return np.ascontiguousarray(pat.block(0, 0, width // step, height // step, step))


def write_slide(out: Path, width: int, height: int, tile: int = 256, quality: int = 80,
                mpp: float = 0.25, sample: np.ndarray | None = None) -> Path:
    """Write the slide; returns ``out``."""
    import tifffile

    pat = Pattern(sample)
    big = width * height * 3 > 2**31
    desc0 = (f"Aperio Image Library v12.0.15 \r\n{width}x{height} [0,0 {width}x{height}] "
             f"({tile}x{tile}) JPEG/RGB Q={quality}|AppMag = 40|MPP = {mpp}"
             "|Filename = synthetic|Title = microtome synthetic slide")
    opts: dict[str, Any] = {"photometric": "rgb", "compression": "jpeg",
            "compressionargs": {"level": quality}, "metadata": None}
    with tifffile.TiffWriter(out, bigtiff=big) as tw:
        tw.write(_tiles(pat, width, height, tile, 1), shape=(height, width, 3), dtype=np.uint8,
                 tile=(tile, tile), description=desc0, **opts)
        thumb = _small(pat, width, height, 768)
        tw.write(thumb, description=f"Aperio Image Library v12.0.15 \r\n{width}x{height} -> "
                 f"{thumb.shape[1]}x{thumb.shape[0]} - |AppMag = 40|MPP = {mpp}",
                 rowsperstrip=16, **opts)
        step = 4
        while -(-width // step) > tile or -(-height // step) > tile:
            w, h = -(-width // step), -(-height // step)
            tw.write(_tiles(pat, w, h, tile, step), shape=(h, w, 3), dtype=np.uint8,
                     tile=(tile, tile), description=desc0.replace(
                         f"({tile}x{tile})", f"{w}x{h} ({tile}x{tile})"), **opts)
            step *= 4
        label = np.full((300, 300, 3), 255, np.uint8)
        label[100:200, 50:250] = (20, 20, 20)
        tw.write(label, description="Aperio Image Library v12.0.15 \r\nlabel 300x300",
                 subfiletype=1, photometric="rgb", compression="lzw", metadata=None)
        macro = _small(pat, width, height, 1024)
        tw.write(macro, description="Aperio Image Library v12.0.15 \r\nmacro "
                 f"{macro.shape[1]}x{macro.shape[0]}", subfiletype=9, **opts)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m microtome.converters.synthetic",
                                description="Write a synthetic Aperio-style pyramidal TIFF.")
    p.add_argument("out", type=Path)
    p.add_argument("--width", type=int, default=8192)
    p.add_argument("--height", type=int, default=6144)
    p.add_argument("--tile", type=int, default=256)
    p.add_argument("--quality", type=int, default=80)
    p.add_argument("--mpp", type=float, default=0.25)
    p.add_argument("--from", dest="sample", type=Path, default=None,
                   help="real sample image to repeat (any format `convert` reads)")
    a = p.parse_args(argv)
    sample = None
    if a.sample is not None:
        from .sources import open_source
        with open_source(a.sample) as r:
            if not r.info.rgb:
                p.error("--from needs an RGB image")
            sample = r.read_region(0, 0, r.info.width, r.info.height)
    write_slide(a.out, a.width, a.height, a.tile, a.quality, a.mpp, sample)
    print(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
