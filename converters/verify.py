"""Read back what was written before it becomes visible.

For every level and plane a sample of chunks (always the first and last,
plus a spread in between) is read from disk, compared with the checksum
recorded when it was encoded, and decoded.  Then stock zarr opens every
level and reads a corner, which checks the JSON documents too.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from microtome.pyramid.errors import StorageError
from microtome.pyramid.layout import ImageMeta

from .sinks import V2Sink, crc, decode_chunk

#: Chunks checked per (level, plane).
SAMPLE_PER_LEVEL = 24
#: Upper bound on chunks checked overall (many-plane images).
SAMPLE_TOTAL = 2000


def _sample(keys: list[tuple[int, ...]], n: int, rng: random.Random) -> list[tuple[int, ...]]:
    if len(keys) <= n:
        return keys
    keys = sorted(keys)
    return [keys[0], keys[-1], *rng.sample(keys[1:-1], n - 2)]


def verify_output(root: Path, meta: ImageMeta, crcs: dict[tuple[int, ...], int]) -> None:
    rng = random.Random(0)
    by_plane: dict[tuple[int, ...], list[tuple[int, ...]]] = defaultdict(list)
    for key in crcs:
        by_plane[key[:4]].append(key)
    planes = sorted(by_plane)
    per = max(2, min(SAMPLE_PER_LEVEL, SAMPLE_TOTAL // max(1, len(planes))))
    levels_seen = {p[0] for p in planes}
    if levels_seen != set(range(len(meta.levels))):
        raise StorageError("verification failed: some levels were not written")
    reader = _chunk_reader(root, meta)
    for plane in planes:
        for key in _sample(by_plane[plane], per, rng):
            data = reader(key)
            if data is None or crc(data) != crcs[key]:
                raise StorageError(f"verification failed: chunk {key} differs from what "
                                   "was written")
            try:
                decode_chunk(meta, data, meta.ngff)
            except Exception as e:
                raise StorageError(f"verification failed: chunk {key} does not decode") from e
    _check_with_zarr(root, meta)


def _chunk_reader(root: Path, meta: ImageMeta) -> Callable[[tuple[int, ...]], bytes | None]:
    """Reads one stored chunk by key; the store is opened once for all of them."""
    if meta.ngff == "0.4":
        sink = V2Sink(root, meta, 0)

        def read_v2(key: tuple[int, ...]) -> bytes | None:
            level, t, c, z, cy, cx = key
            try:
                return (root / sink.chunk_key(meta.levels[level], cy, cx, t, c, z)).read_bytes()
            except OSError:
                return None
        return read_v2
    from microtome.pyramid.reader import Pyramid

    pyr = Pyramid(root, meta, True)

    def read_v3(key: tuple[int, ...]) -> bytes | None:
        level, t, c, z, cy, cx = key
        return pyr.chunk_bytes(level, cy, cx, t, c, z)
    return read_v3


def _check_with_zarr(root: Path, meta: ImageMeta) -> None:
    import zarr

    for lv in meta.levels:
        try:
            arr = zarr.open_array(str(root / lv.path), mode="r")
            if tuple(arr.shape) != meta.array_shape(lv):
                raise StorageError(f"verification failed: level {lv.path} has the wrong shape")
            t = min(meta.tile_size, lv.width, lv.height)
            if meta.kind == "rgb":
                arr[:, :t, :t]
            else:
                arr[0, 0, 0, :t, :t]
        except StorageError:
            raise
        except Exception as e:
            raise StorageError(f"verification failed: zarr cannot read level {lv.path}: "
                               f"{e}") from e
