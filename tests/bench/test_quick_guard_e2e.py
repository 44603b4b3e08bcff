"""`make bench-quick` fails on an injected error rate or a pixel change: the quick
run's own steps (pixel check against the openslide server, fixed tile passes,
summary, guard) against Microtome's real tile app with one fault injected."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench import guard, report, run, servers
from bench.servers import ServerSpec

FAULTY = Path(__file__).with_name("faulty_tiles.py")


def _faulty(root: Path, mode: str) -> ServerSpec:
    spec = servers.microtome(root, "cmu", 1)
    spec.make_argv = lambda port, _w: [sys.executable, str(FAULTY), str(root), "--port",
                                       str(port), "--mode", mode]
    return spec


@pytest.fixture(scope="module")
def slide(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from microtome.converters import convert

    zroot = tmp_path_factory.mktemp("zarr")
    convert(testdata / "CMU-1-Small-Region.svs", zroot / "cmu.ome.zarr")
    return testdata / "CMU-1-Small-Region.svs", zroot


def test_injected_errors_fail_the_quick_guard(slide: tuple[Path, Path], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A fixed tile pass (the quick run's load pass and records) against a server that
    answers 1 in 10 tiles with 500: errors are counted apart and fail the guard."""
    monkeypatch.setattr(run, "WORK", tmp_path / "work")
    _svs, zroot = slide
    spec = _faulty(zroot, "errors")
    tiles = run.tilelists.panning(2220, 2967, 40, 20261124)
    paths = run.write_paths(spec, "tiles-panning", [spec.tile(*t) for t in tiles])
    record = run.Recorder(tmp_path / "quick.jsonl")
    spec.start(tmp_path / "logs")
    try:
        res = run.load_pass(spec, paths, 40, 4, 60.0)
    finally:
        spec.stop()
    record({"suite": "tiles", "server": spec.name, "list": "panning", "concurrency": 4,
            "temp": "cold", "block": 0, **res})
    assert (res["requests"], res["ok"]) == (40, 36), res
    summary = report.quick_summary(record.records)
    assert summary["error_rate/panning/c4/cold"] >= 0.05
    baseline = tmp_path / "baseline.json"
    assert guard.check(summary, baseline, update=False) == 1  # a broken run is no baseline
    assert not baseline.exists()
    clean = {k: v for k, v in summary.items() if not k.startswith("error_rate/")}
    lines, failed = guard.compare(summary, clean)  # same speed as the baseline, yet fails
    assert failed and any("errors" in line for line in lines), lines


def test_a_pixel_change_fails_the_quick_guard(slide: tuple[Path, Path], tmp_path: Path) -> None:
    """The quick run's pixel check (sample tiles against the openslide server) on a
    server whose tiles are 40 grey levels brighter."""
    svs, zroot = slide
    samples = run.tilelists.uniform(2220, 2967, 8, 20261124 + 9)
    pixels = {}
    for spec in (_faulty(zroot, "pixels"), servers.openslide_peer(svs, 2, 1)):
        spec.start(tmp_path / "logs")
        try:
            pixels[spec.name], _ = run.fetch_tiles(spec, samples)
        finally:
            spec.stop()
    summary = report.quick_summary([{"suite": "same-pixels",
                                     **run.same_pixels(pixels, samples)}])
    assert summary["pixels/mean_abs_diff"] > guard.PIXEL_MEAN_MAX
    lines = guard.absolute_problems(summary)
    assert any("differs from the reference" in line for line in lines), lines
