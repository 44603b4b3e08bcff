"""Regression guard for ``make bench-quick``: compare with the recorded baseline.

The primary figures are throughput *ratios* against the openslide server
measured in the same run (robust to machine load); our absolute tiles/s are
compared too but only reported, because on a shared 2-core machine they swing
by more than 20% from one minute to the next.
"""

from __future__ import annotations

import json
from pathlib import Path

THRESHOLD = 0.20


def compare(current: dict[str, float], baseline: dict[str, float]) -> tuple[list[str], bool]:
    """Lines to print and whether any ratio dropped by more than THRESHOLD."""
    lines, failed = [], False
    for key in sorted(set(current) | set(baseline)):
        new, old = current.get(key), baseline.get(key)
        if new is None or old is None or old == 0:
            lines.append(f"  {key}: {old} -> {new} (not comparable)")
            continue
        change = new / old - 1
        flag = ""
        if change < -THRESHOLD:
            if key.startswith("ratio_"):
                flag, failed = "  <-- REGRESSION (> 20% drop)", True
            else:
                flag = "  <-- dropped > 20% (absolute, noisy: check the ratios)"
        lines.append(f"  {key}: {old:g} -> {new:g} ({change:+.0%}){flag}")
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
        print("FAIL: a throughput ratio dropped by more than 20%; re-run once to rule out noise, "
              "then look at the tile path (or `python -m bench --quick --update-baseline` if "
              "the change is intended).")
        return 1
    print("OK: no ratio dropped by more than 20%.")
    return 0
