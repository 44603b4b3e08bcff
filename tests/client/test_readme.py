"""client/README.md's worked example, extracted and run against the live server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.client.conftest import ADMIN, PASSWORD, LiveServer
from tests.conftest import REPO


def readme_example() -> str:
    text = (REPO / "client" / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "client/README.md has no python example"
    return str(blocks[0])


def test_readme_example_runs(live_server: LiveServer, testdata: Path, tmp_path: Path) -> None:
    (tmp_path / "scans").mkdir()
    (tmp_path / "scans" / "CMU-1-Small-Region.svs").symlink_to(
        testdata / "CMU-1-Small-Region.svs")
    (tmp_path / "scans" / "notes.txt").write_text("not a slide: reported, not fatal")
    script = tmp_path / "example.py"
    script.write_text(readme_example())
    env = {**os.environ, "MICROTOME_URL": live_server.url, "MICROTOME_USER": ADMIN,
           "MICROTOME_PASSWORD": PASSWORD, "HOME": str(tmp_path)}
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "notes.txt -> failed:" in run.stdout
    shape = re.search(r"region \((\d+), (\d+), 3\) uint8", run.stdout)
    assert shape, run.stdout
    # CMU-1 was scanned at 20x: 10x is half the full-resolution size.
    assert (int(shape[1]), int(shape[2])) == (round(2967 // 2 / 2), 2220 // 2)
    n = int(re.search(r"(\d+) tissue cells", run.stdout)[1])  # type: ignore[index]
    doc = json.loads((tmp_path / "detections.geojson").read_text())
    assert n > 10 and len(doc["features"]) == n
    assert doc["features"][0]["properties"]["classification"]["name"] == "tissue"
