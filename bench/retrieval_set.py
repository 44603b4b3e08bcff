"""The retrieval evaluation set: hand-labelled tissue under simulated scanners and stains.

Source: the 33 hand-labelled 96 µm tiles of CMU-1-Small-Region.svs
(tests/retrieval/labelled_tiles.py: glass, epithelium, stroma).  Each tile gives
12 regions: 2 sizes (the whole tile, its central 64 µm) x 2 scanners (the slide
as scanned at 0.5 µm/px, and a brighter 1.0 µm/px scan simulated by halving it and
a gamma of 0.7) x 3 stain batches (as stained, haematoxylin x1.6 / eosin x0.6,
haematoxylin x0.6 / eosin x1.6, in stain optical density): 396 regions, every one
brought to the descriptors' 1 µm per pixel as the server does.

The protocol is what makes it hard: a query never counts regions cut from its own
tile (no near-duplicates), and in the "cross" protocol it is compared only with
regions of *another stain batch*, so a family must match tissue across stains,
scanners and sizes.  A random ranking scores ~0.31 precision.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from skimage.color import hed2rgb, rgb2hed

from microtome.retrieval.crops import TARGET_UM
from tests.retrieval.labelled_tiles import LABELS, TILE

#: Level-0 pixel size of CMU-1-Small-Region.svs.
SLIDE_UM = 0.499
#: (haematoxylin, eosin) optical-density factors of each stain batch.
STAINS = ((1.0, 1.0), (1.6, 0.6), (0.6, 1.6))
#: Simulated scanners: (level-0 pixel size in µm, gamma of its illumination).
SCANNERS = ((SLIDE_UM, 1.0), (2 * SLIDE_UM, 0.7))
#: Region sides in µm: the whole tile, and its centre.
SIZES_UM = (TILE * SLIDE_UM, 64.0)


@dataclass(frozen=True)
class Region:
    rgb: NDArray[np.uint8]  # at TARGET_UM per pixel
    label: str
    tile: int  # index of the source tile (same tile: never a counted neighbour)
    stain: int
    scanner: int
    size: int


def restain(rgb: NDArray[np.uint8], h: float, e: float) -> NDArray[np.uint8]:
    """The same tissue stained more or less strongly (scaled in HED optical density)."""
    if (h, e) == (1.0, 1.0):
        return rgb
    hed = rgb2hed(rgb)
    hed[..., 0] *= h
    hed[..., 1] *= e
    return (np.clip(hed2rgb(hed), 0, 1) * 255).round().astype(np.uint8)


def _resize(rgb: NDArray[np.uint8], factor: float) -> NDArray[np.uint8]:
    h, w = rgb.shape[:2]
    size = (max(1, round(w / factor)), max(1, round(h / factor)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))


def tiles(slide: Path) -> list[tuple[str, NDArray[np.uint8]]]:
    """(label, level-0 RGB) of every labelled tile."""
    import openslide

    with openslide.OpenSlide(slide) as s:
        return [(label, np.asarray(s.read_region((gx * TILE, gy * TILE), 0, (TILE, TILE))
                                   .convert("RGB")))
                for label, cells in LABELS.items() for gx, gy in cells]


def build(slide: Path) -> list[Region]:
    out = []
    for t, (label, rgb) in enumerate(tiles(slide)):
        for si, (h, e) in enumerate(STAINS):
            stained = restain(rgb, h, e)
            for ci, (um, gamma) in enumerate(SCANNERS):
                scanned = _resize(stained, um / SLIDE_UM)  # the scan at `um` µm/px
                if gamma != 1.0:  # a brighter lamp / another camera response
                    scanned = (255 * (scanned / 255.0) ** gamma).round().astype(np.uint8)
                native = _resize(scanned, TARGET_UM / um)  # to the descriptors' scale
                for zi, side in enumerate(SIZES_UM):
                    n = round(side / TARGET_UM)
                    y0 = (native.shape[0] - n) // 2
                    x0 = (native.shape[1] - n) // 2
                    out.append(Region(np.ascontiguousarray(native[y0:y0 + n, x0:x0 + n]),
                                      label, t, si, ci, zi))
    return out


def evaluate(vectors: NDArray[np.floating], regions: list[Region], k: int,
             cross: bool) -> tuple[float, float]:
    """(mean precision@k, accuracy of the similarity-weighted vote of the k nearest)."""
    v = np.asarray(vectors, dtype=np.float64)
    sim = v @ v.T
    tile = np.array([r.tile for r in regions])
    stain = np.array([r.stain for r in regions])
    labels = np.array([r.label for r in regions])
    hidden = tile[:, None] == tile[None, :]
    if cross:
        hidden |= stain[:, None] == stain[None, :]
    sim[hidden] = -np.inf
    nearest = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    hits = labels[nearest] == labels[:, None]
    correct = 0
    for i, row in enumerate(nearest):
        votes: dict[str, float] = {}
        for j in row:
            votes[labels[j]] = votes.get(labels[j], 0.0) + max(0.0, float(sim[i, j]))
        correct += max(votes, key=lambda x: votes[x]) == labels[i]
    return float(hits.mean()), correct / len(regions)
