"""Quality on the hard evaluation set (bench/retrieval_set.py): hand-labelled tissue
under simulated scanners (0.5 and 1.0 µm/px, another illumination), stain batches
(haematoxylin/eosin x0.6-x1.6) and region sizes; neighbours never from the query's
own tile, and in the cross protocol only from another stain batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.retrieval_set import VARIANTS, Region, build, build_colourblind, evaluate
from microtome.retrieval.descriptors import WEIGHTS, WEIGHTS_V1, describe, rgb_histogram

#: Precision of a random ranking on this set (~ a third of the candidates share the class).
RANDOM = 0.31


@pytest.fixture(scope="module")
def regions(testdata: Path) -> list[Region]:
    return build(testdata / "CMU-1-Small-Region.svs")


def test_the_set_has_every_condition(regions: list[Region]) -> None:
    assert len(regions) == 396 and len({r.label for r in regions}) == 3
    assert {(r.stain, r.scanner, r.size) for r in regions} == {
        (s, c, z) for s in range(3) for c in range(2) for z in range(2)}
    # Every region is at the descriptors' scale: 96 µm and 64 µm sides at 1 µm/px.
    assert {r.rgb.shape[:2] for r in regions} == {(96, 96), (64, 64)}


def test_the_default_family_matches_tissue_across_stains_scanners_and_sizes(
        regions: list[Region]) -> None:
    vecs = np.stack([describe(r.rgb) for r in regions])
    p10_any, vote_any = evaluate(vecs, regions, 10, cross=False)
    p10_cross, vote_cross = evaluate(vecs, regions, 10, cross=True)
    # Measured: cstats-v1 (the default since migration 0190) 0.974 any, 0.924 cross;
    # cstats-v2 0.980, 0.951.
    assert p10_any > RANDOM + 0.55 and vote_any > 0.9
    assert p10_cross > RANDOM + 0.5 and vote_cross > 0.85
    # The baseline is computed by the same protocol (and measures about as well: this
    # set's classes differ in colour; see bench/RESULTS.md).
    base = np.stack([rgb_histogram(r.rgb) for r in regions])
    assert evaluate(base, regions, 10, cross=True)[0] > RANDOM + 0.5


def test_the_protocols_hide_the_query_tile_and_the_cross_one_its_stain() -> None:
    """A descriptor that recognises only its own tile scores nothing: the protocol
    cannot be passed by near-duplicates."""
    regions = [Region(np.zeros((4, 4, 3), np.uint8), label, tile, stain, 0, 0)
               for tile, label in enumerate(["a", "a", "b", "b"]) for stain in range(2)]
    # Same tile: similarity 1; same label, other tile: -1; other label: 0.
    axes = {0: (0, 1.0), 1: (0, -1.0), 2: (1, 1.0), 3: (1, -1.0)}
    vecs = np.zeros((len(regions), 2))
    for i, r in enumerate(regions):
        axis, sign = axes[r.tile]
        vecs[i, axis] = sign
    assert evaluate(vecs, regions, 1, cross=False)[0] == 0.0
    assert evaluate(vecs, regions, 1, cross=True)[0] == 0.0
    # Without hiding anything, the same tile would be found first (precision 1).
    assert float(np.mean([(vecs @ vecs[i]).argsort()[-1] // 2 == regions[i].tile
                          for i in range(len(regions))])) == 1.0


@pytest.fixture(scope="module")
def colourblind(testdata: Path) -> list[Region]:
    return build_colourblind(testdata / "CMU-1-Small-Region.svs")


def test_the_colourblind_set_leaves_colour_nothing_and_cstats_v2_beats_it(
        colourblind: list[Region]) -> None:
    """The second set: every region's colour marginals matched to a random tissue
    tile.  The RGB histogram falls towards chance; cstats-v2 (texture first) beats it
    by 10 points of precision@10, and cstats-v1 (colour first) does not.  (On held-out
    real tissue, test_evaluation_regions, v1 does better than v2: v1 is the default.)"""
    assert len(colourblind) == 33 * VARIANTS * 2
    base = evaluate(np.stack([rgb_histogram(r.rgb) for r in colourblind]), colourblind, 10,
                    cross=False)[0]
    v2 = evaluate(np.stack([describe(r.rgb, weights=WEIGHTS) for r in colourblind]),
                  colourblind, 10, cross=False)[0]
    v1 = evaluate(np.stack([describe(r.rgb, weights=WEIGHTS_V1) for r in colourblind]),
                  colourblind, 10, cross=False)[0]
    # Measured: baseline 0.493, cstats-v2 0.688, cstats-v1 0.488.
    assert base < RANDOM + 0.25
    assert v2 >= base + 0.10
    assert v1 < base + 0.05
