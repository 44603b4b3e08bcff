"""`microtome-client` as a lab uses it: a subprocess configured by the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.client.conftest import LiveServer, unique


def _run(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "microtome_client.cli", *args], cwd=cwd,
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=240)


def test_upload_export_import_download(client: Any, live_server: LiveServer, testdata: Path,
                                       tmp_path: Path) -> None:
    folder = tmp_path / "scans"
    folder.mkdir()
    (folder / "one.jpg").symlink_to(testdata / "sample.jpg")
    (folder / "bad.txt").symlink_to(testdata / "notanimage.txt")
    name = unique("cli")
    project = client.create_project(name)
    env = {"MICROTOME_URL": live_server.url, "MICROTOME_API_KEY": live_server.api_key,
           "MICROTOME_UPLOAD_STATE": str(tmp_path / "state.json"), "HOME": str(tmp_path)}
    up = _run("upload", str(folder), "--project", name, "--quiet", env=env, cwd=tmp_path)
    assert up.returncode == 1, up.stdout + up.stderr  # one file failed: reported, not fatal
    assert "ok      " in up.stdout and "FAILED  " in up.stdout and "bad.txt" in up.stdout
    images = {i.name: i for i in project.images()}
    assert images["one.jpg"].status == "ready"

    image = images["one.jpg"]
    image.create_annotation({"type": "Point", "coordinates": [5, 5]}, project=project.id)
    out = tmp_path / "a.geojson"
    exp = _run("export-annotations", str(image.id), "-o", str(out), env=env, cwd=tmp_path)
    assert exp.returncode == 0, exp.stderr
    assert len(json.loads(out.read_text())["features"]) == 1
    imp = _run("import-annotations", str(image.id), str(out), "--project", str(project.id),
               env=env, cwd=tmp_path)
    assert imp.returncode == 0 and "imported 1 annotation" in imp.stdout, imp.stderr
    assert image.annotations(project=project.id).count() == 2

    down = _run("download", str(image.id), "-o", str(tmp_path / "dl"), env=env, cwd=tmp_path)
    assert down.returncode == 1 and "not kept" in down.stdout  # uploads are not kept


def test_config_file_and_clear_errors(live_server: LiveServer, tmp_path: Path) -> None:
    cfg = tmp_path / "config.ini"
    cfg.write_text(f"[lab]\nurl = {live_server.url}\napi_key = mtk_wrong\n")
    env = {"MICROTOME_CONFIG": str(cfg), "MICROTOME_URL": "", "MICROTOME_API_KEY": ""}
    bad = _run("--profile", "lab", "export-annotations", "1", env=env, cwd=tmp_path)
    assert bad.returncode == 1 and bad.stderr.startswith("error: 401"), bad.stderr
    none = _run("export-annotations", "1", env={"MICROTOME_CONFIG": str(tmp_path / "nope"),
                                                "MICROTOME_URL": ""}, cwd=tmp_path)
    assert none.returncode != 0 and "no server" in none.stderr
