"""RESULTS.md is generated whole from the raw records in bench/records/: each suite's
section comes from its own record with its date and load; a suite with no record,
or one that failed in the last full run, says so; the committed RESULTS.md is
exactly what the committed records render to."""

from __future__ import annotations

import json
from pathlib import Path

from bench import records, report
from bench.run import EXTRA_SUITES

BENCH = Path(report.__file__).resolve().parent


def test_a_recording_keeps_where_and_when_it_was_measured(tmp_path: Path) -> None:
    rec = records.Recording("histogram", "python -m bench.histogram", directory=tmp_path)
    rec({"suite": "filters", "filter": "(none)", "tiles": 8, "p50_ms": 1.5, "p99_ms": 3.0,
         "mean_ms": 1.6})
    path = rec.save()
    doc = json.loads(path.read_text())
    assert path == tmp_path / "histogram.json"
    assert doc["suite"] == "histogram" and doc["command"] == "python -m bench.histogram"
    assert doc["date"].endswith("UTC") and len(doc["load"]["start"]) == 3
    assert doc["machine"]["cores"] >= 1 and doc["commit"]
    assert doc["figures"][0]["p50_ms"] == 1.5
    assert records.load("histogram", tmp_path) == doc
    assert records.load("nothing", tmp_path) is None


def test_results_are_rendered_from_records_only(tmp_path: Path) -> None:
    tiles = records.Recording("tiles", "python -m bench", directory=tmp_path)
    tiles({"suite": "extra", "module": "bench.scaleout", "status": "failed: RuntimeError()"})
    tiles.save()
    hist = records.Recording("histogram", "python -m bench.histogram", directory=tmp_path)
    hist({"suite": "filters", "filter": "edge=sobel", "tiles": 8, "p50_ms": 12.25,
          "p99_ms": 30.5, "mean_ms": 13.0})
    hist.save()
    doc = json.loads((tmp_path / "histogram.json").read_text())
    doc["date"] = "2026-01-02 03:04 UTC"  # an older record keeps its own date
    (tmp_path / "histogram.json").write_text(json.dumps(doc))
    out = report.write_results(tmp_path, tmp_path / "RESULTS.md")
    text = out.read_text()
    section = text[text.index("## Image adjustments"):]
    section = section[:section.index("\n## ", 1)]
    assert "*Measured 2026-01-02 03:04 UTC" in section and "`edge=sobel` | 12.2 |" in section
    assert "python -m bench.histogram" in section
    # No record yet: the section says how to make one.
    assert "No record yet: run `python -m bench.annotation_table`" in text
    # A suite that failed in the last full run is named as such.
    assert "could not measure this suite** (failed: RuntimeError())" in text
    # Every suite has a section, in the order of the suite list.
    positions = [text.index(f"python -m {name}") for name in
                 ("bench.annotation_table", "bench.histogram", "bench.retrieval")]
    assert positions == sorted(positions)
    assert len([n for n in EXTRA_SUITES]) <= text.count("\n## ")


def test_committed_results_match_the_committed_records(tmp_path: Path) -> None:
    """Nobody edits RESULTS.md by hand: it is what `python -m bench --report-only` renders
    from bench/records/ (run it after changing a suite's render or a record)."""
    fresh = report.write_results(BENCH / "records", tmp_path / "RESULTS.md").read_text()
    assert (BENCH / "RESULTS.md").read_text() == fresh
