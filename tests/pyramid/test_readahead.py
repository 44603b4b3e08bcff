"""Read-ahead groups of remote chunks (pyramid/readahead.py): a band of shard rows,
else the row, else the chunk, never a span over MAX_SPAN."""

from __future__ import annotations

from microtome.pyramid.layout import EMPTY
from microtome.pyramid.readahead import MAX_SPAN, ROWS, block_ranges

PER = 8


def _index(sizes: dict[tuple[int, int], int]) -> tuple[tuple[int, int], ...]:
    """A shard index in C order with the given chunk sizes (others absent)."""
    out, off = [], 0
    for r in range(PER):
        for c in range(PER):
            n = sizes.get((r, c), 0)
            out.append((off, n) if n else (EMPTY, EMPTY))
            off += n
    return tuple(out)


def test_small_chunks_are_read_as_one_band_of_rows() -> None:
    idx = _index({(r, c): 1000 for r in range(PER) for c in range(PER) if (r, c) != (5, 2)})
    group, cells = block_ranges(idx, PER, 6, 3, EMPTY)
    assert group == ("band", 4) and ROWS == 4
    assert {(r, c) for r, c, _, _ in cells} == {(r, c) for r in range(4, 8)
                                                  for c in range(PER)} - {(5, 2)}
    # Every chunk of the band names the same group: concurrent readers share one GET.
    assert {block_ranges(idx, PER, r, c, EMPTY)[0] for r in range(4, 8) for c in range(PER)
            if (r, c) != (5, 2)} == {("band", 4)}


def test_large_chunks_fall_back_to_the_row_then_the_chunk() -> None:
    row_fits = MAX_SPAN // PER  # one row fits, four do not
    idx = _index({(r, c): row_fits for r in range(PER) for c in range(PER)})
    group, cells = block_ranges(idx, PER, 1, 5, EMPTY)
    assert group == ("row", 1) and [c for _, c, _, _ in cells] == list(range(PER))
    huge = _index({(r, c): MAX_SPAN // 2 for r in range(PER) for c in range(PER)})
    group, cells = block_ranges(huge, PER, 2, 7, EMPTY)
    assert group == ("chunk", 2, 7) and [(r, c) for r, c, _, _ in cells] == [(2, 7)]
    for _, _, off, n in cells:
        assert (off, n) == huge[2 * PER + 7]
