"""Descriptor family "bovw-ert-v1" (experimental, not served yet): a bag of visual words
over random subwindows, the words being leaves of extremely randomized trees.

The approach of Marée et al. (Cytomine's retrieval), unsupervised: square
subwindows of random size and position are cut from the crop (at the
normalised scale of `retrieval.crops`), resized to PATCH x PATCH and turned
into raw HSV values; a forest of totally random trees (scikit-learn's
RandomTreesEmbedding), fitted on subwindows of the project's own tissue,
sends each subwindow to one leaf per tree; the descriptor is the
square-rooted, L2-normalised histogram of leaves.  Its length is fixed by the
fitted codebook (the number of leaves).

Pure functions; the codebook is an argument (fitting, storing it per project
and serving this family through the API are not built yet).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from skimage.color import rgb2hsv
from sklearn.ensemble import RandomTreesEmbedding

PATCH = 8
#: Subwindow side, in descriptor pixels (1 µm each): cells to small nests.
MIN_WINDOW, MAX_WINDOW = 6, 32
WINDOWS_PER_CROP = 200


def subwindows(rgb: NDArray[np.uint8], n: int, rng: np.random.Generator) -> NDArray[np.float32]:
    """(n, PATCH*PATCH*3) HSV values of n random square subwindows of `rgb`."""
    h, w = rgb.shape[:2]
    top = max(1, min(MAX_WINDOW, h, w))
    out = np.empty((n, PATCH * PATCH * 3), np.float32)
    for i in range(n):
        side = int(rng.integers(min(MIN_WINDOW, top), top + 1))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        win = Image.fromarray(rgb[y:y + side, x:x + side]).resize(
            (PATCH, PATCH), Image.Resampling.BILINEAR)
        out[i] = rgb2hsv(np.asarray(win)).ravel()
    return out


def fit_codebook(crops: Sequence[NDArray[np.uint8]], *, n_trees: int = 10,
                 leaves: int = 64, seed: int = 0) -> RandomTreesEmbedding:
    """A forest of totally random trees fitted on subwindows of `crops`."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([subwindows(c, WINDOWS_PER_CROP, rng) for c in crops])
    forest = RandomTreesEmbedding(n_estimators=n_trees, max_leaf_nodes=leaves,
                                  random_state=seed, n_jobs=1)
    return forest.fit(x)


def describe(rgb: NDArray[np.uint8], codebook: RandomTreesEmbedding, *, seed: int = 0
             ) -> NDArray[np.float32]:
    """The bag-of-visual-words descriptor of a crop: unit length, one value per leaf.

    Seeded: the same crop always gives the same subwindows, hence the same vector."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError("describe needs an (H, W, 3) uint8 array")
    words = codebook.transform(subwindows(rgb, WINDOWS_PER_CROP, np.random.default_rng(seed)))
    hist = np.sqrt(np.asarray(words.sum(axis=0), dtype=np.float64).ravel())
    norm = float(np.linalg.norm(hist))
    return (hist / norm if norm > 0 else hist).astype(np.float32)
