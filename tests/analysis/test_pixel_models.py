"""Saved pixel-classifier models: trained on one synthetic image, re-applied to
another with a different layout; the artifact predicts exactly like the forest;
a tampered artifact is refused before anything runs; the CLI saves and applies
model files."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from microtome.analysis import AnalysisError, get_app, run_app, validate_params
from microtome.analysis.apps.pixels import target_terms
from microtome.analysis.classifier_model import ModelError, loads
from microtome.analysis.raster import ArrayRaster
from microtome.analysis.training import TermRef
from microtome.cli import main

from .test_pixels import DRAWN, FAST, SHAPE, rasterize, truth

PARAMS = {"resolution": 1, "sigma_max": 4, "tile_size": 256, **FAST}


def truth_b() -> np.ndarray:
    """Another slide: the classes elsewhere (mirrored, the glass strip on the left,
    one more tumour disc)."""
    lab = np.fliplr(truth()).copy()
    yy, xx = np.mgrid[:SHAPE[0], :SHAPE[1]]
    lab[(yy - 250) ** 2 + (xx - 250) ** 2 < 35 ** 2] = 3
    return lab


def painted(lab: np.ndarray, seed: int) -> np.ndarray:
    """The colours and textures of test_pixels.image for any label map."""
    rng = np.random.default_rng(seed)
    img = np.empty((*lab.shape, 3), np.float32)
    img[lab == 1] = (242, 240, 243)
    img[lab == 2] = (225, 150, 185)
    img[lab == 3] = (150, 90, 170)
    fine = rng.normal(0, 10, img.shape)
    coarse = np.kron(rng.normal(0, 18, (lab.shape[0] // 4, lab.shape[1] // 4, 3)),
                     np.ones((4, 4, 1)))
    img += np.where((lab == 3)[..., None], coarse,
                    np.where((lab == 2)[..., None], fine, fine * 0.2))
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def trained() -> bytes:
    """The model of a run on image A (what a worker would upload)."""
    app = get_app("pixel_classifier")
    saved: list[bytes] = []
    run_app(app, ArrayRaster(painted(truth(), 0)),
            validate_params(app.descriptor, PARAMS), workers=2,
            annotations=lambda: DRAWN, on_model=saved.append,
            source={"image_id": 41, "analysis_id": 7, "project_id": 3})
    assert len(saved) == 1
    return saved[0]


def test_a_saved_model_classifies_another_image(trained: bytes) -> None:
    model = loads(trained)
    meta = model.meta
    assert [c["name"] for c in meta["classes"]] == ["Glass", "Stroma", "Tumour"]
    assert [c["id"] for c in meta["classes"]] == [3, 1, 2]
    assert meta["features"]["sigma_max"] == 4 and meta["features"]["n_features"] == 36
    assert meta["training"]["images"] == [41] and meta["training"]["annotations"] == 6
    assert meta["training"]["analysis_id"] == 7 and sum(meta["training"]["per_class"]) > 0
    app = get_app("pixel_classifier")
    logs: list[str] = []
    asked: list[object] = []

    def load(ref: object) -> bytes:
        asked.append(ref)
        return trained

    # Not a single drawn annotation on B: nothing is learnt, the model is applied.
    feats, _ = run_app(app, ArrayRaster(painted(truth_b(), 5)),
                       validate_params(app.descriptor, {"model": 7, "tile_size": 128}),
                       workers=2, load_model=load, on_log=logs.append,
                       on_model=lambda data: pytest.fail("applying must not save a model"))
    assert asked == [7]
    got, want = rasterize(feats), truth_b()
    assert (got == want).mean() >= 0.97, (got == want).mean()
    assert any("trained on image(s) [41]" in line for line in logs)


def test_the_artifact_predicts_exactly_as_the_forest() -> None:
    from sklearn.ensemble import RandomForestClassifier

    from microtome.analysis.classifier_model import dumps, from_forest

    rng = np.random.default_rng(1)
    x = rng.normal(size=(3000, 12)).astype(np.float32)
    y = (x[:, 0] + x[:, 3] * x[:, 5] > 0).astype(int) + (x[:, 7] > 1)
    forest = RandomForestClassifier(15, random_state=0).fit(x, y)
    meta = {"format": "microtome-pixel-classifier", "format_version": 1,
            "app": "pixel_classifier", "resolution": 1.0,
            "features": {"kind": "rgb", "channels": 3, "sigma_min": 1.0, "sigma_max": 1.0,
                         "intensity": True, "edges": True, "texture": True, "n_features": 12},
            "classes": [{"id": None, "name": n, "color": "#123456"} for n in "abc"]}
    model = loads(dumps(from_forest(forest, meta)))
    test = rng.normal(size=(5000, 12)).astype(np.float32)
    assert (model.predict(test) == forest.predict(test)).all()


def _members(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _pack(arrays: dict[str, np.ndarray], pickles: bool = False) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=pickles, **arrays)
    return buf.getvalue()


def _meta(arrays: dict[str, np.ndarray], **changes: object) -> dict[str, np.ndarray]:
    meta = json.loads(arrays["meta"].tobytes())
    meta.update(changes)
    return {**arrays, "meta": np.frombuffer(json.dumps(meta).encode(), np.uint8)}


def test_tampered_artifacts_are_refused(trained: bytes) -> None:
    a = _members(trained)
    assert loads(_pack(a)).n_features == 36  # repacked untouched: still fine

    def refused(arrays: dict[str, np.ndarray], why: str, pickles: bool = False) -> None:
        with pytest.raises(ModelError, match=why):
            loads(_pack(arrays, pickles))

    # A pickle inside (an object array runs code when unpickled): never loaded.
    refused({**a, "value": np.array([{"x": 1}], dtype=object)}, "pickle", pickles=True)
    refused({**a, "extra": np.zeros(3)}, "unexpected members")
    left = a["left"].copy()
    inner = np.flatnonzero(left != -1)[0]
    left[inner] = len(left) + 10**6  # a child far outside the arrays
    refused({**a, "left": left}, "child index")
    left = a["left"].copy()
    left[np.flatnonzero(left != -1)[1]] = 0  # back to the root: a cycle
    refused({**a, "left": left}, "child index")
    feature = a["feature"].copy()
    feature[inner] = 36  # a feature that is not computed
    refused({**a, "feature": feature}, "feature that does not exist")
    threshold = a["threshold"].copy()
    threshold[inner] = np.nan
    refused({**a, "threshold": threshold}, "threshold")
    refused({**a, "left": a["left"].astype(np.int64)}, "left is int64")
    refused({**a, "value": a["value"][:-1]}, "different lengths")
    refused(_meta(a, format="something else"), "format")
    refused(_meta(a, features={**json.loads(a["meta"].tobytes())["features"],
                               "n_features": 48}), "features where the settings give")
    with pytest.raises(ModelError):
        loads(trained[: len(trained) // 2])  # truncated
    with pytest.raises(ModelError):
        loads(b"\x80\x04\x95" + bytes(100))  # a pickle stream, not a model


def test_class_to_term_rule(trained: bytes) -> None:
    """Same id (the same term, even renamed) first, then same name, else new."""
    model = loads(trained)
    got = target_terms(model, [TermRef(1, "Stroma (renamed)"), TermRef(99, "glass"),
                               TermRef(2, "Tumour", "#000000")])
    assert [(t.id, t.name, how) for t, how in got] == [
        (99, "glass", "name"), (1, "Stroma (renamed)", "id"), (2, "Tumour", "id")]
    got = target_terms(model, [TermRef(50, "Other")])
    assert [(t.id, t.name, how) for t, how in got] == [
        (None, "Glass", "new"), (None, "Stroma", "new"), (None, "Tumour", "new")]


def test_cli_saves_a_model_and_applies_it_to_another_file(tmp_path: Path,
                                                          trained: bytes) -> None:
    import tifffile

    from .test_pixels import image

    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    for path, pixels in ((a, image()), (b, painted(truth_b(), 5))):
        tifffile.imwrite(path, pixels, photometric="rgb", tile=(256, 256),
                         compression="jpeg", compressionargs={"level": 95})
    training = tmp_path / "drawn.geojson"
    training.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": d.geometry.__geo_interface__,
         "properties": {"classification": {"name": d.terms[0].name}}} for d in DRAWN]}))
    model = tmp_path / "classes.model.npz"
    assert main(["analyse", "pixel_classifier", str(a), "-o", str(tmp_path / "a.geojson"),
                 "--quiet", "--training", str(training), "--save-model", str(model),
                 *[f"--param={k}={v}" for k, v in PARAMS.items()]]) == 0
    assert loads(model.read_bytes()).meta["training"]["images"] == ["a.tif"]
    out = tmp_path / "b.geojson"
    assert main(["analyse", "pixel_classifier", str(b), "-o", str(out), "--quiet",
                 "--param", f"model={model}"]) == 0
    from shapely.geometry import shape

    from microtome.analysis import Feature

    doc = json.loads(out.read_text())
    feats = [Feature(shape(f["geometry"]), f["properties"]["classification"]["name"])
             for f in doc["features"]]
    assert (rasterize(feats) == truth_b()).mean() >= 0.97
    # Locally a model is a file: an id, a missing file or a tampered one fail clearly.
    assert main(["analyse", "pixel_classifier", str(b), "-o", str(out), "--quiet",
                 "--param", "model=12"]) == 1
    assert main(["analyse", "pixel_classifier", str(b), "-o", str(out), "--quiet",
                 "--param", f"model={tmp_path / 'none.npz'}"]) == 1
    (tmp_path / "bad.npz").write_bytes(trained[:100])
    assert main(["analyse", "pixel_classifier", str(b), "-o", str(out), "--quiet",
                 "--param", f"model={tmp_path / 'bad.npz'}"]) == 1
    # --save-model on a run that trains nothing: an error, not a silent no-op.
    assert main(["analyse", "pixel_classifier", str(b), "-o", str(out), "--quiet",
                 "--param", f"model={model}", "--save-model", str(tmp_path / "x")]) == 1


def test_a_model_from_another_app_is_refused(trained: bytes) -> None:
    a = _members(trained)
    other = _pack(_meta(a, app="someone_elses_app"))
    app = get_app("pixel_classifier")
    with pytest.raises(AnalysisError, match="someone_elses_app"):
        run_app(app, ArrayRaster(painted(truth_b(), 5)),
                validate_params(app.descriptor, {"model": 3}), load_model=lambda r: other)


def test_a_header_claiming_a_huge_array_is_refused_before_allocating(trained: bytes) -> None:
    """A member whose .npy header claims 10^12 values in a few bytes: refused from
    the header alone (no terabyte allocation attempted)."""
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(trained)) as src, zipfile.ZipFile(buf, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "threshold.npy":
                out = io.BytesIO()
                np.lib.format.write_array_header_1_0(
                    out, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
                data = out.getvalue() + bytes(64)
            dst.writestr(info.filename, data)
    with pytest.raises(ModelError, match="claims more than it holds"):
        loads(buf.getvalue())
