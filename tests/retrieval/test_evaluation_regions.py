"""The hand-labelled evaluation set of real tissue (evaluation_regions.json) and the
held-out quality of the default descriptor on it (bench/retrieval_eval.py; the full
figures, every family and both folds, are in bench/RESULTS.md)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from bench.retrieval_eval import Box, evaluate, load_boxes, read_regions
from microtome.retrieval.descriptors import FAMILY, describe, rgb_histogram

SLIDE = "CMU-1-Small-Region.svs"


def test_the_set_has_four_classes_and_more_than_200_regions_on_the_slide() -> None:
    boxes = load_boxes()
    sizes = Counter(b.label for b in boxes)
    assert len(boxes) >= 200 and len(sizes) >= 4, sizes
    assert set(sizes) == {"background", "stroma", "epithelium", "keratin"}
    assert min(sizes.values()) >= 15
    assert len({(b.x, b.y) for b in boxes}) == len(boxes)  # no box labelled twice
    assert all(0 <= b.x and b.x + b.w <= 2220 and 0 <= b.y and b.y + b.h <= 2967 for b in boxes)
    # Both halves of the held-out protocol hold every class.
    for half in ("top", "bottom"):
        assert {b.label for b in boxes if b.half == half} == set(sizes), half


def test_the_protocol_never_counts_an_overlapping_box() -> None:
    """A descriptor that finds only near-duplicates (the overlapping box of the other
    labelling grid) scores nothing: the protocol hides them."""
    boxes = [Box(0, 0, 128, 128, "a"), Box(64, 64, 128, 128, "a"),
             Box(1000, 0, 128, 128, "b"), Box(1064, 64, 128, 128, "b")]
    # Overlapping boxes identical (similarity 1), the same class elsewhere opposite (-1).
    vecs = np.array([[1.0, 0], [1.0, 0], [-1.0, 0], [-1.0, 0]])
    assert evaluate(vecs, boxes, k=1)["p10_macro"] == 0.0
    far = [Box(0, 0, 128, 128, "a"), Box(500, 0, 128, 128, "a"),
           Box(1000, 0, 128, 128, "b"), Box(1500, 0, 128, 128, "b")]
    assert evaluate(vecs, far, k=1)["p10_macro"] == 1.0


@pytest.fixture(scope="module")
def bottom_half(testdata: Path) -> tuple[list[Box], list[np.ndarray]]:
    """The test half of fold A (the bottom of the slide): no weight of the default was
    chosen on it (the default was picked by both folds' test halves: bench/RESULTS.md)."""
    boxes = [b for b in load_boxes() if b.half == "bottom"]
    return boxes, read_regions(testdata / SLIDE, boxes)


def test_the_default_family_beats_the_rgb_histogram_on_held_out_tissue(
        bottom_half: tuple[list[Box], list[np.ndarray]]) -> None:
    boxes, crops = bottom_half
    default = evaluate(np.stack([describe(c) for c in crops]), boxes)
    base = evaluate(np.stack([rgb_histogram(c) for c in crops]), boxes)
    # Measured (fold A, clean): see bench/RESULTS.md, "Retrieval quality on hand-labelled
    # tissue".  Both are far above chance (a random ranking: ~0.25 macro).
    assert default["p10_macro"] > base["p10_macro"], (FAMILY, default, base)
    assert default["vote_macro"] > base["vote_macro"]
    assert default["p10_macro"] > 0.7 and default["vote_macro"] > 0.8


@pytest.mark.xfail(strict=True, reason="issue 17's goal, not met on real tissue: the "
                   "default is only a few points above the RGB histogram (bench/RESULTS.md)")
def test_goal_the_default_beats_the_rgb_histogram_by_10_points(
        bottom_half: tuple[list[Box], list[np.ndarray]]) -> None:
    boxes, crops = bottom_half
    default = evaluate(np.stack([describe(c) for c in crops]), boxes)["p10_macro"]
    base = evaluate(np.stack([rgb_histogram(c) for c in crops]), boxes)["p10_macro"]
    assert default >= base + 0.10
