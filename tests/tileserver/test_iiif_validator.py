"""The official IIIF validator (PyPI iiif-validator) against a live server.

The validator's test image (1000x1000, a 10x10 grid of coloured squares) is
not shipped as a file; the package carries its colour table
(`ValidationInfo.colorInfo`, square (x, y) = colorInfo[x][y]) and checks only
the centres of the squares, so we draw it from that table, convert it into a
pyramid and serve it under the validator's identifier.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from iiif_validator.validator import ValidationInfo

from .conftest import build_rgb
from .livesrv import live_server

IDENTIFIER = "67352ccc-d1b0-11e1-89ae-279075081939"


def validator_image() -> np.ndarray:
    colors = ValidationInfo().colorInfo
    img = np.zeros((1000, 1000, 3), np.uint8)
    for x in range(10):
        for y in range(10):
            img[y * 100:(y + 1) * 100, x * 100:(x + 1) * 100] = colors[x][y]
    return img


@pytest.fixture(scope="module")
def validator_server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("iiif")
    build_rgb(root / f"{IDENTIFIER}.ome.zarr", validator_image())
    with live_server(root) as hostport:
        yield hostport


def _validate(hostport: str, prefix: str, version: str, level: int) -> subprocess.CompletedProcess:
    script = shutil.which("iiif-validate.py", path=str(Path(sys.executable).parent)) or \
        str(Path(sys.executable).parent / "iiif-validate.py")
    return subprocess.run(
        [sys.executable, script, "-s", hostport, "-p", prefix, "-i", IDENTIFIER,
         f"--version={version}", "--level", str(level), "-v"],
        capture_output=True, text=True, timeout=240, env={**os.environ, "PYTHONWARNINGS": "ignore"})


def _report(proc: subprocess.CompletedProcess) -> str:
    lines = (proc.stdout + proc.stderr).splitlines()
    return "\n".join(x for x in lines if "FAIL" in x or "Done" in x or "expected" in x
                     or "got:" in x or "url:" in x)


def test_iiif3_level2_all_pass(validator_server: str) -> None:
    proc = _validate(validator_server, "iiif/3", "3.0", 2)
    out = proc.stdout + proc.stderr
    assert "Done (" in out, out[-2000:]
    assert proc.returncode == 0, _report(proc)
    assert " FAIL" not in out
    assert out.count(" PASS") >= 25  # every level 0-2 test ran


def test_iiif2_level2_all_pass(validator_server: str) -> None:
    proc = _validate(validator_server, "iiif/2", "2.0", 2)
    assert proc.returncode == 0, _report(proc)
