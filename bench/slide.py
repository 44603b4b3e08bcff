"""Generate a large, realistic Aperio-style slide from real tissue.

The source is level 0 of ``CMU-1-Small-Region.svs`` (real H&E tissue).  It is
cropped so both sides are multiples of 64 and mirrored into a periodic
"tile" of twice that size, so that mirroring leaves no seams and every x4
level of the pyramid is *exactly* the area-average of the level above (the
period stays an integer number of pixels down to level 3).  The slide is
written as a pyramidal BigTIFF the way Aperio scanners do it: 256 px JPEG
tiles (YCbCr 4:2:0, quality 75), levels 4x apart as separate IFDs, and an
Aperio ImageDescription (MPP 0.499) so openslide opens it as "aperio".

Tiles come from a generator, so memory stays at the periodic source (about
75 MB) plus tifffile's buffers, whatever the slide size.  The output is cached
beside a JSON sidecar recording the parameters; it is rebuilt only when they
change.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

SOURCE = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "CMU-1-Small-Region.svs"
#: Bump when the generated pixels or layout change, so caches are rebuilt.
GENERATOR_VERSION = 3
TILE = 256
#: Levels are 4x apart, as in Aperio SVS; 3 reductions keep the period integral.
LEVEL_FACTOR = 4
PERIOD_MULTIPLE = LEVEL_FACTOR**3


@dataclass(frozen=True)
class SlideParams:
    width: int
    height: int
    quality: int = 75
    mpp: float = 0.499
    version: int = GENERATOR_VERSION


def level_sizes(width: int, height: int) -> list[tuple[int, int]]:
    """(w, h) of each stored level: x4 reductions while the level is bigger than ~1 tile."""
    sizes = [(width, height)]
    while len(sizes) < 4 and max(sizes[-1]) // LEVEL_FACTOR >= TILE * 2:
        w, h = sizes[-1]
        sizes.append((w // LEVEL_FACTOR, h // LEVEL_FACTOR))
    return sizes


def load_source() -> np.ndarray:
    """Level 0 of the real sample as (h, w, 3) uint8, cropped to multiples of 64."""
    import openslide

    with openslide.OpenSlide(str(SOURCE)) as s:
        w, h = s.dimensions
        rgba = np.asarray(s.read_region((0, 0), 0, (w, h)))
    h64, w64 = (h // PERIOD_MULTIPLE) * PERIOD_MULTIPLE, (w // PERIOD_MULTIPLE) * PERIOD_MULTIPLE
    return np.ascontiguousarray(rgba[:h64, :w64, :3])


def mirrored_period(src: np.ndarray) -> np.ndarray:
    """The 2h x 2w periodic cell: source, mirrored right, below and diagonally (no seams)."""
    top = np.concatenate([src, src[:, ::-1]], axis=1)
    return np.ascontiguousarray(np.concatenate([top, top[::-1]], axis=0))


def downsample(cell: np.ndarray, factor: int) -> np.ndarray:
    """Area-average by an integer factor (the cell's sides are multiples of it)."""
    h, w, c = cell.shape
    out = np.empty((h // factor, w // factor, c), np.uint8)
    # Row bands keep the float temporaries small (the cell is ~75 MB of uint8).
    for r in range(0, h // factor, 64):
        band = cell[r * factor : (r + 64) * factor].astype(np.float32)
        rows = band.shape[0] // factor
        blocks = band.reshape(rows, factor, w // factor, factor, c)
        out[r : r + rows] = np.rint(blocks.mean(axis=(1, 3)))
    return out


def iter_tiles(cell: np.ndarray, width: int, height: int) -> Iterator[np.ndarray]:
    """Tiles of the periodic image, row-major, each a full TILE x TILE (edges padded)."""
    ph, pw = cell.shape[:2]
    for y0 in range(0, height, TILE):
        iy = np.arange(y0, y0 + TILE) % ph
        rows = cell[iy]
        for x0 in range(0, width, TILE):
            ix = np.arange(x0, x0 + TILE) % pw
            tile = rows[:, ix]
            # Beyond the image edge tifffile expects padding; keep it black as scanners do.
            if y0 + TILE > height:
                tile[height - y0 :] = 0
            if x0 + TILE > width:
                tile[:, width - x0 :] = 0
            yield tile


def aperio_description(p: SlideParams, w: int, h: int, level: int) -> str:
    if level == 0:
        return (
            f"Aperio Image Library v11.2.1 \r\n{p.width}x{p.height} [0,0 {p.width}x{p.height}] "
            f"({TILE}x{TILE}) JPEG/RGB Q={p.quality}|AppMag = 20|StripeWidth = 2040"
            f"|ScanScope ID = MICROTOME-BENCH|MPP = {p.mpp}|Filename = microtome-bench"
        )
    return (
        f"Aperio Image Library v11.2.1 \r\n{p.width}x{p.height} [0,0 {p.width}x{p.height}] "
        f"({TILE}x{TILE}) -> {w}x{h} JPEG/RGB Q={p.quality}"
    )


def write_slide(path: Path, p: SlideParams) -> None:
    """Write the pyramidal BigTIFF to ``path`` (atomically, via a .partial file)."""
    import tifffile

    cell = mirrored_period(load_source())
    tmp = path.with_name(path.name + ".partial")
    with tifffile.TiffWriter(tmp, bigtiff=True) as tif:
        for level, (w, h) in enumerate(level_sizes(p.width, p.height)):
            lcell = cell if level == 0 else downsample(cell, LEVEL_FACTOR**level)
            tif.write(
                iter_tiles(lcell, w, h),
                shape=(h, w, 3),
                dtype=np.uint8,
                tile=(TILE, TILE),
                # tifffile encodes RGB input as JFIF YCbCr 4:2:0 under Photometric=RGB,
                # which is exactly what Aperio scanners write.
                photometric="rgb",
                compression="jpeg",
                compressionargs={"level": p.quality},
                description=aperio_description(p, w, h, level),
                resolution=(1e4 / p.mpp / LEVEL_FACTOR**level,) * 2,
                resolutionunit="CENTIMETER",
                subfiletype=0,
                maxworkers=2,
                metadata=None,
            )
    os.replace(tmp, path)


def ensure_slide(workdir: Path, width: int, height: int, log=print) -> Path:
    """Return the cached slide for these parameters, generating it if needed."""
    p = SlideParams(width, height)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"bench-{width}x{height}.svs"
    sidecar = path.with_suffix(".json")
    if path.exists() and sidecar.exists() and json.loads(sidecar.read_text()) == asdict(p):
        log(f"slide: cached {path.name}")
        return path
    log(f"slide: generating {path.name} ({width}x{height}) from {SOURCE.name}")
    t0 = time.perf_counter()
    write_slide(path, p)
    sidecar.write_text(json.dumps(asdict(p)))
    log(f"slide: {path.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - t0:.0f} s")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=65536)
    ap.add_argument("--height", type=int, default=49152)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    args = ap.parse_args(argv)
    print(ensure_slide(args.out, args.width, args.height))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
