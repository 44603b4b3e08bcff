"""The tile suite end to end on a small real slide: Microtome's tile server and the
openslide peer (two processes) each serve exactly the same requests."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import report, run, servers


def test_every_server_gets_the_same_requests(tmp_path: Path, testdata: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from microtome.converters import convert

    monkeypatch.setattr(run, "WORK", tmp_path / "work")
    svs = testdata / "CMU-1-Small-Region.svs"
    zroot = tmp_path / "zarr"
    convert(svs, zroot / "cmu.ome.zarr")
    specs = [servers.microtome(zroot, "cmu", 1), servers.openslide_peer(svs, 2, 2)]
    cfg = run.Config(True, 2220, 2967, {"panning": 140, "uniform": 140}, [4], 2.0,
                     ["openslide"], pass_requests=100, pass_cap_s=60.0)
    record = run.Recorder(tmp_path / "records.jsonl")
    run.tile_suite(cfg, specs, record)
    lists = next(r for r in record.records if r["suite"] == "lists")
    assert lists["pass_requests"] == 100
    for name in ("panning", "uniform"):
        assert lists[name] >= 100 and sum(lists["levels"][name].values()) == 100
    passes = [r for r in record.records if r["suite"] == "tiles"]
    assert len(passes) == 2 * 4 * 2  # lists x ABBA blocks x cold/warm
    for r in passes:
        assert (r["requests"], r["ok"], r["errors"]) == (100, 100, 0), r
        assert not r["timed_out"] and r["server_cpu_s_per_1000"] is not None
    summary = report.quick_summary(record.records)
    assert summary["error_rate/panning/c4/cold"] == 0
    assert summary["ratio_vs_openslide/uniform/c4/warm"] > 0
    assert "first 100 tiles of its list" in "\n".join(
        report.pass_lines(record.records, cfg.__dict__))
