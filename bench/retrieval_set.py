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


# ---------------------------------------------------------------- colour-blind set
#
# The set above is solved by colour: its three classes differ in colour, and a
# plain RGB histogram does as well as anything.  The second set asks for what
# colour cannot give: the same labelled tiles, each seen VARIANTS times as if
# from another lab and scanner, and every variant's colour made uninformative:
#   1. stain jitter: haematoxylin and eosin optical density each scaled by a
#      random factor (0.6-1.6) plus a random offset, in HED space;
#   2. scanner optics: a Gaussian blur of random width (sigma 0-1.2 px at the
#      slide's 0.5 µm/px);
#   3. colour made uninformative: the per-channel histogram matched to that of
#      a randomly drawn tile of ANY class (also jittered), so each channel's
#      intensity distribution says nothing of the class, only the spatial
#      arrangement of the intensities (texture, structure) does;
#   4. a JPEG round trip at a random quality (60-90), as scanners store tiles.
# Then brought to the descriptors' 1 µm/px; two sizes (whole tile, centre 64 µm).
# Same protocol: a query never counts regions of its own tile.  The RGB
# histogram is at chance level here by construction (the check that the set
# does what it says); what a family scores above it is what it sees beyond
# colour marginals.

#: Variants of each tile in the colour-blind set.
VARIANTS = 6


def _jitter(rgb: NDArray[np.uint8], rng: np.random.Generator) -> NDArray[np.uint8]:
    hed = rgb2hed(rgb)
    for c in (0, 1):
        hed[..., c] = hed[..., c] * rng.uniform(0.6, 1.6) + rng.uniform(-0.01, 0.01)
    return (np.clip(hed2rgb(hed), 0, 1) * 255).round().astype(np.uint8)


def _blur(rgb: NDArray[np.uint8], sigma: float) -> NDArray[np.uint8]:
    from scipy.ndimage import gaussian_filter

    if sigma <= 0.05:
        return rgb
    out = gaussian_filter(rgb.astype(np.float32), sigma=(sigma, sigma, 0))
    return np.clip(out, 0, 255).round().astype(np.uint8)


def _jpeg(rgb: NDArray[np.uint8], quality: int) -> NDArray[np.uint8]:
    import io

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def build_colourblind(slide: Path, seed: int = 17) -> list[Region]:
    """The colour-blind set: 33 tiles x VARIANTS x 2 sizes (`stain` = variant index)."""
    from skimage.exposure import match_histograms

    rng = np.random.default_rng(seed)
    source = tiles(slide)
    tissue = [i for i, (label, _) in enumerate(source) if label != "background"]
    out = []
    for t, (label, rgb) in enumerate(source):
        for v in range(VARIANTS):
            img = _blur(_jitter(rgb, rng), float(rng.uniform(0.0, 1.2)))
            ref = _jitter(source[int(rng.choice(tissue))][1], rng)
            # Dithered first: equal values (flat glass) would otherwise keep a spiky
            # histogram of their own through the matching.
            dithered = img + rng.uniform(-0.5, 0.5, img.shape)
            matched = match_histograms(dithered, ref, channel_axis=-1)
            img = np.clip(matched, 0, 255).round().astype(np.uint8)
            img = _jpeg(img, int(rng.integers(60, 91)))
            native = _resize(img, TARGET_UM / SLIDE_UM)
            for zi, side in enumerate(SIZES_UM):
                n = round(side / TARGET_UM)
                y0 = (native.shape[0] - n) // 2
                x0 = (native.shape[1] - n) // 2
                out.append(Region(np.ascontiguousarray(native[y0:y0 + n, x0:x0 + n]),
                                  label, t, v, 0, zi))
    return out
