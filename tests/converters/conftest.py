"""Fixtures for converter tests: the shared real samples and small generators."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

TESTDATA = Path(__file__).resolve().parents[3] / "shared" / "testdata"


@pytest.fixture(scope="session")
def testdata() -> Path:
    if not (TESTDATA / "CMU-1-Small-Region.svs").exists():
        pytest.fail(f"real sample files missing: expected them in {TESTDATA}")
    return TESTDATA


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    err = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if err == 0 else float(10 * np.log10(255.0**2 / err))


def ref_downsample(a: np.ndarray) -> np.ndarray:
    """Reference 2x area average: mean of the pixels that exist, rounded half up."""
    h, w = a.shape[:2]
    out = np.empty(((h + 1) // 2, (w + 1) // 2, *a.shape[2:]), dtype=np.float64)
    for y in range(out.shape[0]):
        for x in range(out.shape[1]):
            block = a[2 * y:2 * y + 2, 2 * x:2 * x + 2].astype(np.float64)
            out[y, x] = block.reshape(-1, *a.shape[2:]).mean(axis=0)
    if a.dtype.kind in "ui":
        return np.floor(out + 0.5).astype(a.dtype)
    return out.astype(a.dtype)


def read_level(root: Path, level: int) -> np.ndarray:
    """A level through stock zarr, as (t, c, z, y, x) or (c, y, x)."""
    import zarr
    return np.asarray(zarr.open_array(str(root / str(level)), mode="r")[:])
