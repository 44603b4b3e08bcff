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
def held_out(testdata: Path) -> dict[str, dict]:
    """The default family and the RGB histogram on the test half of fold A (the bottom
    of the slide; no weight of either was chosen on it, and the default was picked by
    both folds' test halves: bench/RESULTS.md)."""
    boxes = [b for b in load_boxes() if b.half == "bottom"]
    crops = read_regions(testdata / SLIDE, boxes)
    return {"default": evaluate(np.stack([describe(c) for c in crops]), boxes),
            "rgb": evaluate(np.stack([rgb_histogram(c) for c in crops]), boxes)}


def test_the_default_family_beats_the_rgb_histogram_on_held_out_tissue(
        held_out: dict[str, dict]) -> None:
    default, base = held_out["default"], held_out["rgb"]
    # Measured (fold A, as scanned): cstats-v1 P@10 macro 0.782, RGB histogram 0.761
    # (cstats-v2: 0.771); a random ranking: ~0.25.  Every family's vote fails on the
    # 4 keratin regions of this half (3 visible neighbours of their class at most).
    assert default["p10_macro"] > base["p10_macro"], (FAMILY, default, base)
    assert default["p10_micro"] >= base["p10_micro"]
    assert default["vote_micro"] >= base["vote_micro"]
    assert default["p10_macro"] > 0.75 and default["vote_micro"] > 0.9


@pytest.mark.xfail(strict=True, reason="issue 17's goal, not met on real tissue: the "
                   "default is only a few points above the RGB histogram (bench/RESULTS.md)")
def test_goal_the_default_beats_the_rgb_histogram_by_10_points(
        held_out: dict[str, dict]) -> None:
    assert held_out["default"]["p10_macro"] >= held_out["rgb"]["p10_macro"] + 0.10
