"""Region descriptors: pure numpy functions from RGB pixels to a fixed-length vector.

Family "cstats" (colour and texture statistics): stain-deconvolved
(haematoxylin, eosin, DAB) intensity histograms, local binary patterns and
GLCM (Haralick) statistics, each block L2-normalised and weighted, the whole
vector L2-normalised so that a dot product is the cosine similarity.  Two
weightings are servable: "cstats-v1" (colour first, `WEIGHTS_V1`) and
"cstats-v2" (texture first, `WEIGHTS`); the server uses `FAMILY`, set by
MICROTOME_RETRIEVAL_DESCRIPTOR (core.settings, read when this module is
imported; default cstats-v1).

The default was picked by `python -m bench.retrieval_eval`: 307 hand-labelled
regions of real tissue in four classes, two spatial folds, every figure on the
half no choice was made on.  There cstats-v1 led (held-out macro P@10 0.826
as scanned, 0.770 re-stained/blurred) ahead of cstats-v2 (0.797, 0.727) and the
RGB histogram (0.798, 0.744); cstats-v2 had been chosen earlier on synthetic
sets of the same slide without a held-out half (on the "colourblind" set,
colour marginals made uninformative, it scores 0.688 against 0.488 for v1).
Neither beats the RGB histogram by the 10 points issue 17 asks
(bench/RESULTS.md).  Migration 0190 re-describes every annotation with v1.

Pixels arrive at a normalised scale (`retrieval.crops`): the same µm per
pixel for every slide, so that texture statistics compare across scanners.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from skimage.color import rgb2gray, rgb2hed
from skimage.feature import graycomatrix, graycoprops, local_binary_pattern

from microtome.core.settings import retrieval_descriptor_settings_from_env

#: Bins of each stain histogram; stain optical densities beyond HED_MAX land in the last bin.
HED_BINS = 16
#: Upper end of the histogram range of each stain channel, in the units of skimage's
#: rgb2hed on 8-bit input (the 99th percentiles on an H&E slide are ~0.2, 0.07, 0.09).
HED_MAX = (0.25, 0.12, 0.10)
LBP_SETTINGS = ((8, 1.0), (16, 2.0))  # (points, radius) pairs, "uniform" codes: P + 2 bins
GLCM_LEVELS = 32
GLCM_DISTANCES = (1, 2, 4)
GLCM_ANGLES = (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)
GLCM_PROPS = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation", "ASM")
#: Relative weight of each block in the final vector: texture (the arrangement of
#: intensities) leads, colour (which moves with the stain batch and the scanner)
#: breaks ties.
WEIGHTS = {"hed": 0.3, "hed_moments": 0.15, "lbp": 1.0, "glcm": 1.0}
#: cstats-v1's weights (colour first): the stain histograms lead.
WEIGHTS_V1 = {"hed": 1.0, "hed_moments": 0.5, "lbp": 0.7, "glcm": 0.7}
#: Every servable family and its block weights (the names stored in the index).
FAMILIES = {"cstats-v1": WEIGHTS_V1, "cstats-v2": WEIGHTS}
#: The family this process describes and searches with (MICROTOME_RETRIEVAL_DESCRIPTOR).
FAMILY = retrieval_descriptor_settings_from_env().family

DIM = (3 * HED_BINS + 6 + sum(p + 2 for p, _ in LBP_SETTINGS)
       + len(GLCM_PROPS) * len(GLCM_DISTANCES))

Vector = NDArray[np.float32]


def _unit(v: NDArray[np.floating], weight: float = 1.0) -> NDArray[np.float64]:
    a = np.asarray(v, dtype=np.float64)
    n = float(np.linalg.norm(a))
    return a * (weight / n) if n > 0 else a


def _pixels(values: NDArray[Any], mask: NDArray[np.bool_] | None) -> NDArray[Any]:
    return values[mask] if mask is not None and mask.any() else values.ravel()


def hed_features(rgb: NDArray[np.uint8], mask: NDArray[np.bool_] | None = None
                 ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(per-stain histograms, per-stain mean and standard deviation) inside `mask`."""
    hed = rgb2hed(rgb)
    hists, moments = [], []
    for c, top in enumerate(HED_MAX):
        v = np.clip(_pixels(hed[..., c], mask), 0.0, top)
        h, _ = np.histogram(v, bins=HED_BINS, range=(0.0, top))
        hists.append(h / max(1, v.size))
        moments += [float(v.mean()) / top, float(v.std()) / top]
    return np.concatenate(hists), np.asarray(moments)


def lbp_features(gray: NDArray[np.uint8], mask: NDArray[np.bool_] | None = None
                 ) -> NDArray[np.float64]:
    """Histograms of rotation-invariant uniform local binary patterns at two radii."""
    out = []
    for points, radius in LBP_SETTINGS:
        codes = _pixels(local_binary_pattern(gray, points, radius, method="uniform"), mask)
        h = np.bincount(codes.astype(np.int64), minlength=points + 2)[: points + 2]
        out.append(h / max(1, codes.size))
    return np.concatenate(out)


def glcm_features(gray: NDArray[np.uint8]) -> NDArray[np.float64]:
    """Haralick statistics of the grey-level co-occurrence matrix, averaged over angles.

    Over the whole crop (a co-occurrence matrix needs pixel pairs, not a masked set).
    Contrast and dissimilarity grow without bound: log-compressed to keep them
    from dominating the block.
    """
    q = (gray.astype(np.uint16) * GLCM_LEVELS // 256).astype(np.uint8)
    m = graycomatrix(q, distances=list(GLCM_DISTANCES), angles=list(GLCM_ANGLES),
                     levels=GLCM_LEVELS, symmetric=True, normed=True)
    feats = []
    for prop in GLCM_PROPS:
        v = graycoprops(m, prop).mean(axis=1)  # one value per distance
        if prop in ("contrast", "dissimilarity"):
            v = np.log1p(v)
        elif prop == "correlation":
            v = (np.nan_to_num(v, nan=1.0) + 1.0) / 2.0  # [-1, 1] → [0, 1]; flat crop → 1
        feats.append(v)
    return np.concatenate(feats)


def describe(rgb: NDArray[np.uint8], mask: NDArray[np.bool_] | None = None,
             weights: dict[str, float] | None = None) -> Vector:
    """The descriptor of an RGB crop (H, W, 3) uint8 in the configured family `FAMILY`
    (`weights`: another weighting, e.g. WEIGHTS for cstats-v2); unit length, DIM values."""
    if weights is None:
        weights = FAMILIES[FAMILY]
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError("describe needs an (H, W, 3) uint8 array")
    if min(rgb.shape[:2]) < 3:
        raise ValueError("crop too small to describe")
    gray = (rgb2gray(rgb) * 255.0).round().astype(np.uint8)
    hed, moments = hed_features(rgb, mask)
    vec = np.concatenate([
        _unit(hed, weights["hed"]), _unit(moments, weights["hed_moments"]),
        _unit(lbp_features(gray, mask), weights["lbp"]),
        _unit(glcm_features(gray), weights["glcm"]),
    ])
    return _unit(vec).astype(np.float32)


def rgb_histogram(rgb: NDArray[np.uint8], mask: NDArray[np.bool_] | None = None,
                  bins: int = 8) -> Vector:
    """Baseline: joint-free per-channel RGB histogram, unit length (for evaluation only)."""
    out = []
    for c in range(3):
        v = _pixels(rgb[..., c], mask)
        h, _ = np.histogram(v, bins=bins, range=(0, 256))
        out.append(h / max(1, v.size))
    return _unit(np.concatenate(out)).astype(np.float32)
