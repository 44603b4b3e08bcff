"""Positive cell detection on synthetic hematoxylin/DAB images with known
nuclei and known DAB grades: every nucleus found once, graded right, the
H-score and positive percentage exact; thresholds that do not increase are a
named parameter error."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.color import hed2rgb

from microtome.analysis import InvalidParams, get_app, run_app, validate_params
from microtome.analysis.apps.positive import OD_SCALE, REGION_CLASS, h_score
from microtome.analysis.raster import ArrayRaster
from microtome.analysis.runner import Region

from .synth import disc_mask

#: DAB optical density per grade, well inside each band of the default cuts 0.2/0.4/0.6.
DAB_BY_GRADE = (0.0, 0.3, 0.5, 0.85)


def ihc_image(shape: tuple[int, int], nuclei: list[tuple[float, float, float, int]],
              seed: int = 3) -> np.ndarray:
    """Beer-Lambert hematoxylin + DAB: negative nuclei blue, positive ones brown."""
    rng = np.random.default_rng(seed)
    hed = np.zeros((*shape, 3))
    hed[..., 0] = 0.03  # a faint counterstain everywhere
    for cx, cy, r, g in nuclei:
        m = disc_mask(shape, cx, cy, r)
        hed[m, 0] = 0.45 if g == 0 else 0.2
        hed[m, 2] = DAB_BY_GRADE[g]
    rgb = hed2rgb(hed / OD_SCALE) + rng.normal(0, 0.01, (*shape, 3))
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def layout(shape: tuple[int, int]) -> list[tuple[float, float, float, int]]:
    rng = np.random.default_rng(11)
    out = []
    for n, (cy, cx) in enumerate((cy, cx) for cy in range(40, shape[0] - 30, 60)
                                 for cx in range(40, shape[1] - 30, 60)):
        out.append((cx + rng.uniform(-5, 5), cy + rng.uniform(-5, 5), rng.uniform(7, 10),
                    [0, 0, 1, 2, 3, 0, 1][n % 7]))
    return out


def run(raster: ArrayRaster, region: Region | None = None, **params: object) -> list:
    app = get_app("positive_cell_detection")
    return run_app(app, raster, validate_params(app.descriptor, params), region)[0]


@pytest.mark.parametrize("tile_size", [256, 1024])
def test_every_nucleus_graded_and_the_h_score_exact(tile_size: int) -> None:
    shape = (560, 720)
    truth = layout(shape)
    features = run(ArrayRaster(ihc_image(shape, truth), mpp=0.5), tile_size=tile_size)
    summary = [f for f in features if f.classification == REGION_CLASS]
    cells = [f for f in features if f.classification != REGION_CLASS]
    assert len(summary) == 1 and len(cells) == len(truth)
    # Each detected nucleus sits on one true nucleus and has its grade.
    for f in cells:
        c = f.geometry.centroid
        near = min(truth, key=lambda t: (t[0] - c.x) ** 2 + (t[1] - c.y) ** 2)
        assert (near[0] - c.x) ** 2 + (near[1] - c.y) ** 2 < 4 ** 2
        assert int(f.measurements["Grade"]) == near[3], (near, f.measurements)
    counts = [sum(1 for t in truth if t[3] == g) for g in range(4)]
    m = summary[0].measurements
    assert m["Num nuclei"] == len(truth)
    assert [m["Num negative"], m["Num 1+"], m["Num 2+"], m["Num 3+"]] == counts
    assert m["H-score"] == pytest.approx(h_score(counts))
    assert m["Positive %"] == pytest.approx(100 * (len(truth) - counts[0]) / len(truth))


def test_h_score_formula() -> None:
    assert h_score([0, 0, 0, 10]) == 300
    assert h_score([10, 0, 0, 0]) == 0
    assert h_score([1, 1, 1, 1]) == pytest.approx(150)
    assert h_score([0, 0, 0, 0]) == 0


def test_region_restricts_the_count() -> None:
    shape = (560, 720)
    truth = layout(shape)
    region = Region(0, 0, 360, 280)
    features = run(ArrayRaster(ihc_image(shape, truth), mpp=0.5), region)
    cells = [f for f in features if f.classification != REGION_CLASS]
    inside = [t for t in truth if t[0] < 360 and t[1] < 280]
    assert len(cells) == len(inside)


def test_thresholds_must_increase() -> None:
    raster = ArrayRaster(ihc_image((200, 200), []), mpp=0.5)
    with pytest.raises(InvalidParams) as e:
        run(raster, dab_1=0.5, dab_2=0.4)
    assert "dab_2" in e.value.errors
