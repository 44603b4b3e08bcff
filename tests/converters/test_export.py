"""`microtome export`: portable OME-Zarr read back by stock zarr + ome-zarr in
a virtual environment that holds only those (no imagecodecs codecs)."""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import numpy as np
import pytest
import zarr

from converters import ConvertOptions, convert
from converters.export import check_portable, export
from microtome.cli import main as microtome_main
from pyramid.errors import SourceError

#: Reused between runs (pip's cache makes the first creation quick too).
STOCK_VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / \
    "microtome-tests" / "stock-zarr-venv"

_READ = """
import sys, numpy as np, zarr
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader
root, expected, stored = sys.argv[1:4]
nodes = list(Reader(parse_url(root))())
level0 = np.asarray(nodes[0].data[0])
want = np.load(expected)
assert level0.shape == want.shape and np.array_equal(level0, want), "pixels differ"
assert len(nodes[0].data) == int(sys.argv[4]), "levels differ"
try:
    zarr.open_array(stored + "/0", mode="r")[...]
    print("stock-read-original")
except Exception as e:
    print("original-refused:", type(e).__name__)
print("ok")
"""


@pytest.fixture(scope="session")
def stock_python() -> Path:
    py = STOCK_VENV / "bin" / "python"
    check = [str(py), "-c", "import zarr, ome_zarr; import importlib.util as u; "
             "assert u.find_spec('imagecodecs') is None"]
    if not py.exists() or subprocess.run(check, capture_output=True).returncode != 0:
        venv.create(STOCK_VENV, with_pip=True, clear=True)
        proc = subprocess.run([str(py), "-m", "pip", "install", "-q", "--only-binary=:all:",
                               "zarr>=3", "ome-zarr"], capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
    return py


def _stock_read(py: Path, exported: Path, expected: np.ndarray, stored: Path,
                levels: int, tmp: Path) -> str:
    np.save(tmp / "expected.npy", expected)
    proc = subprocess.run([str(py), "-c", _READ, str(exported), str(tmp / "expected.npy"),
                           str(stored), str(levels)], capture_output=True, text=True,
                          timeout=120, env={"PATH": os.environ.get("PATH", "")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_jpeg_store_exports_to_stock_readable_zarr(testdata: Path, tmp_path: Path,
                                                   stock_python: Path) -> None:
    stored = tmp_path / "in" / "svs.ome.zarr"
    res = convert(testdata / "CMU-1-Small-Region.svs", stored)
    assert res.codec == "jpeg"
    rc = microtome_main(["export", str(stored), "-o", str(tmp_path / "out")])
    assert rc == 0
    exported = tmp_path / "out" / "svs.ome.zarr"
    check_portable(exported)
    assert (exported / "associated").is_dir() and (exported / "metadata").is_dir()
    ours = np.asarray(zarr.open_array(str(stored / "0"), mode="r")[...])  # with imagecodecs
    out = _stock_read(stock_python, exported, ours, stored, res.levels, tmp_path)
    assert "original-refused: UnknownCodecError" in out and out.strip().endswith("ok"), out


def test_source_and_nd_exports(testdata: Path, tmp_path: Path, stock_python: Path) -> None:
    src = testdata / "multi-channel-z-series.ome.tif"
    res = export(src, tmp_path / "out")
    check_portable(res.path)
    import tifffile
    ref = tifffile.imread(src)  # (c, z, y, x)
    got = np.asarray(zarr.open_array(str(res.path / "0"), mode="r")[...])
    assert np.array_equal(got[0], ref)
    # and re-exporting the converted store gives the same pixels, stock-readable
    stored = tmp_path / "conv.ome.zarr"
    convert(src, stored, ConvertOptions(ngff="0.4"))
    again = export(stored, tmp_path / "out2")
    _stock_read(stock_python, again.path, got, stored, res.levels, tmp_path)


def test_export_refuses_what_is_not_an_image(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x.txt").write_text("hello")
    rc = microtome_main(["export", str(tmp_path / "x.txt"), "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "not a recognised image format" in err[0], err
    assert not any((tmp_path / "o").glob("*"))
    with pytest.raises(SourceError):
        check_portable_of_jpeg(tmp_path)


def check_portable_of_jpeg(tmp: Path) -> None:
    doc = tmp / "a" / "0"
    doc.mkdir(parents=True)
    (doc / "zarr.json").write_text('{"node_type": "array", "codecs": [{"name": '
                                   '"sharding_indexed", "configuration": {"codecs": '
                                   '[{"name": "imagecodecs_jpeg"}]}}]}')
    check_portable(tmp / "a")
