"""One installed namespace: the wheel holds only `microtome/`, and a bare import of a
top-level folder (which would load a second copy of a package) is refused."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "pyramid", "converters", "tileserver", "catalog", "annotations", "analysis",
            "retrieval")


@pytest.mark.parametrize("name", PACKAGES)
def test_bare_import_is_refused_with_the_right_name(name: str) -> None:
    r = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert f"import microtome.{name}, not {name}" in r.stderr


def test_wheel_installs_everything_under_microtome(tmp_path: Path) -> None:
    had_build = (REPO / "build").exists()
    try:
        r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(REPO),
                            "-w", str(tmp_path)], capture_output=True, text=True, timeout=300)
    finally:
        if not had_build:  # setuptools builds in the source tree
            shutil.rmtree(REPO / "build", ignore_errors=True)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = tmp_path.glob("microtome-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"microtome", wheel.name.split("-")[0]
                                                 + "-" + wheel.name.split("-")[1] + ".dist-info"}
    for pkg in PACKAGES:
        sources = {p.relative_to(REPO).as_posix() for p in (REPO / pkg).rglob("*.py")
                   if "__pycache__" not in p.parts}
        packed = {n.removeprefix("microtome/") for n in names if n.startswith(f"microtome/{pkg}/")}
        assert sources <= packed, sorted(sources - packed)[:5]
        migrations = list((REPO / pkg / "migrations").glob("*.sql"))
        assert all(f"{pkg}/migrations/{m.name}" in packed for m in migrations)
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "= microtome.analysis.apps.tissue:TissueDetection" in entry_points
