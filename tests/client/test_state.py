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
