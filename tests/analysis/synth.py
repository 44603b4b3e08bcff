"""Synthetic H&E-like images with known nuclei (centres, radii) and tissue."""

from __future__ import annotations

import numpy as np

GLASS = (242, 240, 243)
EOSIN = (232, 150, 195)
NUCLEUS = (85, 55, 145)


def disc_mask(shape: tuple[int, int], cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= r * r


def he_image(shape: tuple[int, int], nuclei: list[tuple[float, float, float]],
             tissue: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """RGB uint8: glass, eosin-pink tissue (everywhere unless ``tissue`` is a
    mask), purple nuclei (cx, cy, r) in pixel-edge coordinates, mild noise."""
    rng = np.random.default_rng(seed)
    img = np.empty((*shape, 3), np.float32)
    img[:] = GLASS
    t = np.ones(shape, bool) if tissue is None else tissue
    img[t] = EOSIN
    for cx, cy, r in nuclei:
        img[disc_mask(shape, cx, cy, r)] = NUCLEUS
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def grid_nuclei(shape: tuple[int, int], step: int, r: float, margin: int,
                seed: int = 1) -> list[tuple[float, float, float]]:
    """Well-separated nuclei on a jittered grid."""
    rng = np.random.default_rng(seed)
    out = []
    for cy in range(margin, shape[0] - margin, step):
        for cx in range(margin, shape[1] - margin, step):
            jx, jy = rng.uniform(-step / 6, step / 6, 2)
            out.append((cx + jx, cy + jy, r * rng.uniform(0.85, 1.15)))
    return out
