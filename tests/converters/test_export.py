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

from microtome.cli import main as microtome_main
from microtome.converters import ConvertOptions, convert
from microtome.converters.export import check_portable, export
from microtome.pyramid.errors import SourceError

#: Reused between runs (pip's and npm's caches make the first creation quick too).
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "microtome-tests"
STOCK_VENV = CACHE / "stock-zarr-venv"
ZARRITA = CACHE / "zarrita"

#: zarrita (the JavaScript Zarr reader vizarr uses) under node: the sum of level 0.
_ZARRITA_READ = """
import * as zarr from "zarrita";
import FileSystemStore from "@zarrita/storage/fs";
const [root, path] = process.argv.slice(2);
const store = new FileSystemStore(root);
const group = await zarr.open(zarr.root(store).resolve(""), { kind: "group" });
const arr = await zarr.open(zarr.root(store).resolve(path), { kind: "array" });
const chunk = await zarr.get(arr);
let sum = 0n;
for (const v of chunk.data) sum += BigInt(Math.round(Number(v)));
console.log(JSON.stringify({ shape: chunk.shape, sum: sum.toString(),
                             ome: group.attrs.ome.version }));
"""

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


@pytest.fixture(scope="session")
def zarrita_dir() -> Path:
    import shutil

    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are needed (the project's front end needs them too)")
    if not (ZARRITA / "node_modules" / "zarrita").is_dir():
        ZARRITA.mkdir(parents=True, exist_ok=True)
        (ZARRITA / "package.json").write_text('{"name": "t", "private": true, '
                                              '"type": "module"}')
        proc = subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund",
                               "zarrita@^0.7", "@zarrita/storage@^0.1"], cwd=ZARRITA,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
    (ZARRITA / "read.mjs").write_text(_ZARRITA_READ)
    return ZARRITA


def _zarrita(folder: Path, root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["node", str(folder / "read.mjs"), str(root), "0"], cwd=folder,
                          capture_output=True, text=True, timeout=120)


def test_zarrita_under_node_reads_an_export(testdata: Path, tmp_path: Path,
                                            zarrita_dir: Path) -> None:
    import json

    stored = tmp_path / "svs.ome.zarr"
    convert(testdata / "CMU-1-Small-Region.svs", stored)
    res = export(stored, tmp_path / "out")
    proc = _zarrita(zarrita_dir, res.path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    level0 = np.asarray(zarr.open_array(str(res.path / "0"), mode="r")[...])
    assert doc["shape"] == list(level0.shape) and doc["ome"] == "0.5"
    assert int(doc["sum"]) == int(level0.astype(np.int64).sum())
    refused = _zarrita(zarrita_dir, stored)  # the serving store: JPEG chunks
    assert refused.returncode != 0 and "UnknownCodecError" in refused.stderr


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
