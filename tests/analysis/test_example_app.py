"""apps/example installs with pip and is found as an app next to the built-in ones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from microtome.analysis import get_app, run_app, validate_params
from microtome.analysis.raster import ArrayRaster
from microtome.analysis.registry import discover

from .synth import he_image

EXAMPLE = Path(__file__).resolve().parents[2] / "apps" / "example"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    # A real pip install (isolated build with setuptools from the configured index),
    # into a folder of its own so the test environment stays as it is.
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--target", str(target), str(EXAMPLE)],
                   check=True, capture_output=True, timeout=240)
    return target


def test_pip_installed_example_is_discovered_and_runs(installed: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(installed))
    apps, broken = discover()
    assert not broken
    assert {"stain_grid", "tissue_detection", "nucleus_detection"} <= set(apps)
    app = get_app("stain_grid", "0.1.0", apps)
    # Left half dense nuclei, right half bare eosin: the cells say so.
    nuclei = [(float(x), float(y), 7.0) for x in range(16, 256, 24) for y in range(16, 512, 24)]
    raster = ArrayRaster(he_image((512, 512), nuclei, seed=9), mpp=0.5)
    params = validate_params(app.descriptor, {"cell": 128})
    features, prov = run_app(app, raster, params)
    assert len(features) == 16 and prov["app"] == "stain_grid"
    left = [f.measurements["Hematoxylin OD mean"] for f in features
            if f.geometry.bounds[2] <= 256]
    right = [f.measurements["Hematoxylin OD mean"] for f in features
             if f.geometry.bounds[0] >= 256]
    assert min(left) > 2 * max(right)
    kept, _ = run_app(app, raster, validate_params(
        app.descriptor, {"cell": 128, "min_hematoxylin": float(np.mean(left + right))}))
    assert len(kept) == 8
