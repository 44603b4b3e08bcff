"""Descriptors and crops as pure functions, on real tissue from CMU-1-Small-Region.svs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openslide
import pytest
from PIL import Image

from microtome.pyramid.errors import InvalidRequest
from microtome.retrieval.crops import MAX_SIDE, MIN_SIDE, output_size, px_per_output
from microtome.retrieval.descriptors import DIM, describe, rgb_histogram
from tests.retrieval.labelled_tiles import LABELS, TILE

PIXEL_UM = 0.499  # the slide's level-0 pixel size


@pytest.fixture(scope="module")
def tiles(testdata: Path) -> dict[tuple[int, int], np.ndarray]:
    """Every labelled tile at level 0 (TILE x TILE px, RGB)."""
    with openslide.OpenSlide(testdata / "CMU-1-Small-Region.svs") as s:
        return {c: np.asarray(s.read_region((c[0] * TILE, c[1] * TILE), 0, (TILE, TILE))
                              .convert("RGB"))
                for cells in LABELS.values() for c in cells}


def _at(rgb: np.ndarray, factor: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    size = (round(w / factor), round(h / factor))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))


def _precision_at(vectors: np.ndarray, labels: np.ndarray, k: int) -> float:
    sim = vectors @ vectors.T
    np.fill_diagonal(sim, -np.inf)  # leave one out
    nearest = np.argsort(-sim, axis=1)[:, :k]
    return float((labels[nearest] == labels[:, None]).mean())


def test_descriptor_is_fixed_length_unit_and_deterministic(tiles: dict) -> None:
    rgb = next(iter(tiles.values()))
    v = describe(rgb)
    assert v.shape == (DIM,) and v.dtype == np.float32
    assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)
    assert np.array_equal(v, describe(rgb.copy()))
    # Another size of the same kind of pixels: same length.
    assert describe(rgb[:40, :57]).shape == (DIM,)


def test_mask_restricts_the_colour_statistics(tiles: dict) -> None:
    glass = tiles[LABELS["background"][0]]
    tissue = tiles[LABELS["epithelium"][0]]
    half = np.concatenate([glass[:, :96], tissue[:, 96:]], axis=1)
    mask = np.zeros(half.shape[:2], bool)
    mask[:, 96:] = True
    with_mask = describe(half, mask)
    assert with_mask @ describe(tissue[:, 96:]) > describe(half) @ describe(tissue[:, 96:])


def test_bad_arrays_are_refused() -> None:
    with pytest.raises(ValueError):
        describe(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError):
        describe(np.zeros((10, 10, 3), np.float32))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        describe(np.zeros((2, 10, 3), np.uint8))


def test_flat_crops_are_still_unit_vectors() -> None:
    for value in (0, 128, 255):
        v = describe(np.full((32, 32, 3), value, np.uint8))
        assert np.isfinite(v).all() and np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)


def test_normalised_scale_and_its_limits() -> None:
    assert px_per_output(0.25) == pytest.approx(4.0)
    assert px_per_output(None) == 1.0 and px_per_output(0.0) == 1.0
    assert output_size(400, 200, 4.0) == (100, 50)
    with pytest.raises(InvalidRequest) as e:
        output_size(40, 400, 4.0)  # 10 px wide at 1 µm/px
    assert e.value.detail["min_side"] == MIN_SIDE and e.value.detail["max_side"] == MAX_SIDE
    with pytest.raises(InvalidRequest):
        output_size(MAX_SIDE + 1, 100, 1.0)


def test_two_scanner_resolutions_describe_the_same_tissue_alike(tiles: dict) -> None:
    """The same tile scanned at 0.5 µm/px and (simulated) at 1 µm/px, each brought to the
    normalised scale, is nearer to itself than to any other class's tile."""
    cells = [c for cs in LABELS.values() for c in cs]
    labels = np.array([lab for lab, cs in LABELS.items() for _ in cs])
    fine = np.stack([describe(_at(tiles[c], px_per_output(PIXEL_UM))) for c in cells])
    coarse_scans = [_at(tiles[c], 2.0) for c in cells]  # a 1 µm/px scanner: factor 1
    coarse = np.stack([describe(_at(s, px_per_output(2 * PIXEL_UM))) for s in coarse_scans])
    sim = coarse @ fine.T
    best = np.argmax(sim, axis=1)
    assert (labels[best] == labels).mean() >= 0.9


def test_same_class_tiles_rank_first_and_beat_the_rgb_baseline(tiles: dict) -> None:
    cells = [c for cs in LABELS.values() for c in cs]
    labels = np.array([lab for lab, cs in LABELS.items() for _ in cs])
    crops = [_at(tiles[c], px_per_output(PIXEL_UM)) for c in cells]
    ours = np.stack([describe(c) for c in crops])
    baseline = np.stack([rgb_histogram(c) for c in crops])
    p_ours, p_base = _precision_at(ours, labels, 5), _precision_at(baseline, labels, 5)
    # Measured: 0.98 (cstats-v1) vs 0.97 (RGB histogram) at k=5 on these 33 tiles;
    # this easy 3-class set cannot show the 10-point margin issue #17 asks for (the
    # colour-blind set of test_evaluation_set does).
    assert p_ours >= 0.9, p_ours
    assert p_ours >= p_base - 0.02, (p_ours, p_base)


def test_bag_of_visual_words_learned_on_the_slide_ranks_same_class_first(
        tiles: dict, testdata: Path) -> None:
    from microtome.retrieval import bovw

    # Unsupervised: the codebook sees random (unlabelled) tiles of the same slide.
    rng = np.random.default_rng(1)
    with openslide.OpenSlide(testdata / "CMU-1-Small-Region.svs") as s:
        unlabelled = [_at(np.asarray(s.read_region((int(x), int(y)), 0, (TILE, TILE))
                                     .convert("RGB")), px_per_output(PIXEL_UM))
                      for x, y in rng.integers(0, [2220 - TILE, 2967 - TILE], size=(30, 2))]
    codebook = bovw.fit_codebook(unlabelled)
    cells = [c for cs in LABELS.values() for c in cs]
    labels = np.array([lab for lab, cs in LABELS.items() for _ in cs])
    crops = [_at(tiles[c], px_per_output(PIXEL_UM)) for c in cells]
    vectors = np.stack([bovw.describe(c, codebook) for c in crops])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(vectors[0], bovw.describe(crops[0], codebook))
    assert bovw.describe(crops[0][:50, :70], codebook).shape == vectors[0].shape
    # Measured 0.98 at k=5 (cstats-v1: 0.98, RGB histogram: 0.97).
    assert _precision_at(vectors, labels, 5) >= 0.9
