"""The pixel classifier on a synthetic image whose classes are known pixel by
pixel: trained on a few drawn squares, it labels (nearly) every pixel right;
tiles do not change the result; missing training data is a precise error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from shapely import contains_xy
from shapely.geometry import box

from microtome.analysis import AnalysisError, InvalidParams, get_app, run_app, validate_params
from microtome.analysis.raster import ArrayRaster
from microtome.analysis.training import Drawn, TermRef
from microtome.cli import main

from .synth import disc_mask

SHAPE = (320, 352)
STROMA, TUMOUR, GLASS = TermRef(1, "Stroma", "#e08ab4"), TermRef(2, "Tumour", "#5a3a91"), \
    TermRef(3, "Glass", "#f0f0f0")


def truth() -> np.ndarray:
    """Class per pixel: 1 Glass, 2 Stroma, 3 Tumour (the classes sorted by name)."""
    lab = np.full(SHAPE, 2, np.uint8)
    lab[:, 260:] = 1
    lab[disc_mask(SHAPE, 100, 110, 55)] = 3
    lab[200:300, 150:240] = 3
    return lab


def image(seed: int = 0) -> np.ndarray:
    """Colour and texture differ per class: smooth glass, fine-grained stroma,
    coarse-grained tumour."""
    rng = np.random.default_rng(seed)
    lab = truth()
    img = np.empty((*SHAPE, 3), np.float32)
    img[lab == 1] = (242, 240, 243)
    img[lab == 2] = (225, 150, 185)
    img[lab == 3] = (150, 90, 170)
    fine = rng.normal(0, 10, img.shape)
    coarse = np.kron(rng.normal(0, 18, (SHAPE[0] // 4, SHAPE[1] // 4, 3)), np.ones((4, 4, 1)))
    img += np.where((lab == 3)[..., None], coarse, np.where((lab == 2)[..., None], fine,
                                                            fine * 0.2))
    return np.clip(img, 0, 255).astype(np.uint8)


#: A smaller forest: the classes are easy, and the test stays quick.
FAST = {"trees": 20, "max_samples": 4000}

DRAWN = [Drawn(box(280, 20, 330, 90), (GLASS,)), Drawn(box(280, 200, 320, 300), (GLASS,)),
         Drawn(box(20, 230, 100, 290), (STROMA,)), Drawn(box(180, 30, 240, 90), (STROMA,)),
         Drawn(box(80, 90, 120, 130), (TUMOUR,)), Drawn(box(170, 220, 220, 280), (TUMOUR,))]


def classify(params: dict[str, object], drawn: list[Drawn] = DRAWN, workers: int = 2
             ) -> tuple[np.ndarray, list]:
    app = get_app("pixel_classifier")
    feats, _ = run_app(app, ArrayRaster(image()), validate_params(app.descriptor, params),
                       workers=workers, annotations=lambda: drawn)
    return rasterize(feats), feats


def rasterize(feats: list) -> np.ndarray:
    names = {"Glass": 1, "Stroma": 2, "Tumour": 3}
    ys, xs = np.mgrid[:SHAPE[0], :SHAPE[1]] + 0.5
    out = np.zeros(SHAPE, np.uint8)
    for f in feats:
        inside = contains_xy(f.geometry, xs, ys)
        assert not (out[inside] != 0).any(), "classes overlap"
        out[inside] = names[f.classification]
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_learns_the_known_classes_nearly_exactly() -> None:
    got, feats = classify({"resolution": 1, "sigma_max": 4, "tile_size": 128, **FAST})
    want = truth()
    assert (got != 0).all()  # every pixel of the region is classified, once
    assert (got == want).mean() >= 0.98
    for k in (1, 2, 3):
        assert iou(got == k, want == k) >= 0.95, k
    f = next(f for f in feats if f.classification == "Tumour")
    assert f.color == (0x5a, 0x3a, 0x91) and f.measurements["Area px^2"] > 0
    # Tiles of 128 px and one tile: the same pixels (features read with a margin).
    one, _ = classify({"resolution": 1, "sigma_max": 4, "tile_size": 4096, **FAST}, workers=1)
    assert (one == got).all()


def test_coarser_working_level_and_region() -> None:
    app = get_app("pixel_classifier")
    params = validate_params(app.descriptor, {"resolution": 2, "sigma_max": 2, "terms": [1, 2]})
    from microtome.analysis import Region

    feats, prov = run_app(app, ArrayRaster(image()), params, Region(0, 0, 256, 320),
                          annotations=lambda: DRAWN)
    assert {f.classification for f in feats} == {"Stroma", "Tumour"}  # glass not learnt
    got, want = rasterize(feats)[:, :256], truth()[:, :256]
    assert (rasterize(feats)[:, 256:] == 0).all()  # nothing outside the region
    assert iou(got == 3, want == 3) >= 0.9
    assert prov["params"]["terms"] == [1, 2]


def test_training_data_errors_are_precise() -> None:
    with pytest.raises(AnalysisError, match="at least two terms"):
        classify({}, drawn=[d for d in DRAWN if d.terms == (GLASS,)])
    with pytest.raises(AnalysisError, match="at least two terms"):
        classify({}, drawn=[])
    with pytest.raises(InvalidParams) as e:
        classify({"terms": [1, 99]})
    assert "99" in e.value.errors["terms"]
    with pytest.raises(InvalidParams):
        validate_params(get_app("pixel_classifier").descriptor, {"terms": [0]})


def test_cli_learns_from_a_geojson_file(tmp_path: Path) -> None:
    import tifffile

    src = tmp_path / "classes.tif"
    # JPEG: a lossy source converts to the RGB (brightfield) kind the apps read.
    tifffile.imwrite(src, image(), photometric="rgb", tile=(256, 256), compression="jpeg",
                     compressionargs={"level": 95})
    training = tmp_path / "drawn.geojson"
    training.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": d.geometry.__geo_interface__,
         "properties": {"classification": {"name": d.terms[0].name, "color": [9, 9, 9]}}}
        for d in DRAWN]}))
    out = tmp_path / "classes.geojson"
    assert main(["analyse", "pixel_classifier", str(src), "-o", str(out), "--quiet",
                 "--training", str(training), "--param", "resolution=1",
                 "--param", "sigma_max=4"]) == 0
    doc = json.loads(out.read_text())
    from shapely.geometry import shape

    from microtome.analysis import Feature

    feats = [Feature(shape(f["geometry"]), f["properties"]["classification"]["name"])
             for f in doc["features"]]
    assert (rasterize(feats) == truth()).mean() >= 0.98
    assert main(["analyse", "pixel_classifier", str(src), "-o", str(out), "--quiet"]) == 1
