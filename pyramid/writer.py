"""Low-level writer of our OME-Zarr layout: metadata documents and whole shards.

Shards are assembled here rather than through zarr's sharding codec because
the JPEG codec chain cannot be written through zarr (non-contiguous input
inside imagecodecs' encoder, DESIGN.md §4) and because one write per shard is
what keeps conversion streaming and fast.  Callers encode the inner chunks.
"""

from __future__ import annotations

import json
from pathlib import Path

from .layout import ImageMeta, Level, pack_shard, shard_key
from .metadata import array_document, group_attributes


def _write_json(path: Path, doc: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, allow_nan=False))


class PyramidWriter:
    """Writes one image directory; the caller handles atomic rename (see converters)."""

    def __init__(self, root: Path, meta: ImageMeta, quality: int = 90) -> None:
        self.root = Path(root)
        self.meta = meta
        self.quality = quality

    def write_metadata(self) -> None:
        """Write the group and every level's array document (idempotent)."""
        self.root.mkdir(parents=True, exist_ok=True)
        _write_json(self.root / "zarr.json", {
            "zarr_format": 3, "node_type": "group",
            "attributes": group_attributes(self.meta),
        })
        for level in self.meta.levels:
            _write_json(self.root / level.path / "zarr.json",
                        array_document(self.meta, level, self.quality))

    def write_shard(self, level: Level, sy: int, sx: int,
                    chunks: dict[tuple[int, int], bytes],
                    t: int = 0, c: int = 0, z: int = 0) -> int:
        """Write one shard from encoded inner chunks keyed by (row, col) in the shard.

        Returns the number of bytes written.  An all-empty shard is not written
        at all (zarr reads the fill value).
        """
        if not chunks:
            return 0
        data = pack_shard(chunks, self.meta.chunks_per_shard_side)
        path = self.root / shard_key(self.meta, level, sy, sx, t, c, z)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(data)
        return len(data)

    def write_file(self, relpath: str, data: bytes) -> None:
        """Write an extra file beside the pyramid (associated image, metadata)."""
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
