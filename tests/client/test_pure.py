"""The upload state file survives parallel writers (uploads run side by side)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from microtome_client.uploads import StateFile, expand


def test_parallel_writers_lose_nothing(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "sub" / "state.json")

    def writer(i: int) -> None:
        for j in range(40):
            state.put(f"{i}-{j}", {"upload_id": f"u{i}{j}"})

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    data = json.loads((tmp_path / "sub" / "state.json").read_text())
    assert len(data) == 160 and state.get("3-39") == {"upload_id": "u339"}
    state.put("3-39", None)
    assert state.get("3-39") is None
    assert not [p for p in (tmp_path / "sub").iterdir() if p.name.startswith(".")]


def test_expand_folders_skips_hidden_files(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.svs").write_bytes(b"1")
    (tmp_path / "a" / ".DS_Store").write_bytes(b"1")
    (tmp_path / "a" / ".git").mkdir()
    (tmp_path / "a" / ".git" / "c").write_bytes(b"1")
    (tmp_path / "b.tif").write_bytes(b"1")
    assert [p.name for p in expand([tmp_path / "a", tmp_path / "b.tif"])] == ["x.svs", "b.tif"]


def test_decode_npy_views_any_layout() -> None:
    import io

    import numpy as np
    from microtome_client.pixels import decode_npy

    for arr in (np.arange(24, dtype=np.uint16).reshape(2, 3, 4),
                np.asfortranarray(np.arange(6, dtype=">f4").reshape(2, 3)),
                np.zeros((0, 5, 3), np.uint8)):
        buf = io.BytesIO()
        np.save(buf, arr)
        got = decode_npy(buf.getvalue())
        assert got.dtype == arr.dtype and np.array_equal(got, arr)


def test_level_maths_cover_the_region_with_aligned_blocks() -> None:
    from microtome_client.models import ImageMetadata, Level
    from microtome_client.pixels import Window, blocks, choose_level, level_window

    meta = ImageMetadata(width=1000, height=700, kind="rgb", dtype="uint8", tile_size=256,
                         levels=[Level(1000, 700, 1), Level(500, 350, 2), Level(250, 175, 4)],
                         pixel_size_um=[0.5, 0.5], z_spacing_um=None, size_t=1, size_c=3,
                         size_z=1, channels=[], associated=[], version="1")
    assert [choose_level(meta, None, s) for s in (1, 0.6, 0.5, 0.3, 0.01)] == [0, 0, 1, 1, 2]
    assert level_window(meta, 1, 3, 0, 100, 699) == Window(1, 1, 0, 51, 350)
    win = level_window(meta, 0, 200, 100, 600, 500)
    got = blocks(meta, win, 256)
    assert [(b.x, b.y, b.w, b.h) for b in got][:3] == [(0, 0, 256, 256), (256, 0, 256, 256),
                                                      (512, 0, 256, 256)]
    assert got[-1] == Window(0, 768, 512, 232, 188)  # clipped at the image edge
    covered = {(x, y) for b in got for x in range(b.x, b.x + b.w, 4)
               for y in range(b.y, b.y + b.h, 4)}
    assert all((x, y) in covered for x in range(200, 800, 4) for y in range(100, 600, 4))
