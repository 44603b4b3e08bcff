"""Regression guard for ``make bench-quick``: compare with the recorded baseline.

Two families of figures are judged, each by its *median* change over the
scenarios (lists x cold/warm), because single passes on a shared 2-core
machine swing by far more than 20%:
- ``ratio_vs_openslide/...``: our tiles/s divided by the openslide server's,
  measured in the same run in ABBA blocks (machine load cancels);
- ``cpu_s_per_1000/...``: our server's CPU seconds per 1000 tiles (CPU time
  barely depends on other load; a slower tile path costs more of it).
A median ratio drop of more than 20%, or a median CPU-per-tile rise of more
than 20%, fails the guard (exit 1).  Absolute tiles/s are shown, not judged.
"""

from __future__ import annotations

import json
from pathlib import Path
from statistics import median

THRESHOLD = 0.20


def _changes(current: dict[str, float], baseline: dict[str, float], prefix: str) -> list[float]:
    return [current[k] / baseline[k] - 1 for k in current
            if k.startswith(prefix) and baseline.get(k)]


def compare(current: dict[str, float], baseline: dict[str, float]) -> tuple[list[str], bool]:
    """Lines to print and whether the run regressed."""
    lines = []
    for key in sorted(set(current) | set(baseline)):
        new, old = current.get(key), baseline.get(key)
        if new is None or old is None or old == 0:
            lines.append(f"  {key}: {old} -> {new} (not comparable)")
        else:
            lines.append(f"  {key}: {old:g} -> {new:g} ({new / old - 1:+.0%})")
    failed = False
    ratio = _changes(current, baseline, "ratio_vs_")
    if ratio:
        m = median(ratio)
        bad = m < -THRESHOLD
        failed |= bad
        lines.append(f"  median throughput-ratio change: {m:+.0%}"
                     + ("  <-- REGRESSION (> 20% drop)" if bad else ""))
    cpu = _changes(current, baseline, "cpu_s_per_1000/")
    if cpu:
        m = median(cpu)
        bad = m > THRESHOLD
        failed |= bad
        lines.append(f"  median CPU-per-tile change: {m:+.0%}"
                     + ("  <-- REGRESSION (> 20% more CPU per tile)" if bad else ""))
    if not ratio and not cpu:
        lines.append("  nothing comparable (did the Microtome tile server run?)")
    return lines, failed


def check(current: dict[str, float], baseline_path: Path, update: bool) -> int:
    if update or not baseline_path.exists():
        baseline_path.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
        print(f"baseline recorded in {baseline_path}")
        return 0
    baseline = json.loads(baseline_path.read_text())
    lines, failed = compare(current, baseline)
    print("quick benchmark vs baseline:")
    print("\n".join(lines))
    if failed:
        print("FAIL: the tile path looks > 20% slower than the baseline; re-run once to rule "
              "out noise, then look at the tile path (or `python -m bench --quick "
              "--update-baseline` if the change is intended).")
        return 1
    print("OK: no regression beyond 20%.")
    return 0
