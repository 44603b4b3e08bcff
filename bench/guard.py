"""Regression guard for ``make bench-quick``: compare with the recorded baseline.

First what needs no baseline, and fails the guard on its own:
- errors: any error answer from our server (errors are never throughput);
- pixels: our sample tiles against the openslide server's (same shapes, small
  mean difference — a wrong region or a broken decode is far above it).

Then two families of figures, each judged by its *median* change over the
scenarios (lists x cold/warm); every scenario is itself the median of
repeated passes (ABBA blocks, repeated), and the spread between those repeats
is the guard's own noise, reported:
- ``ratio_vs_openslide/...``: our tiles/s divided by the openslide server's,
  pass against pass in the same run (machine load cancels);
- ``cpu_s_per_1000/...``: our server's CPU seconds per 1000 successful tiles.
The threshold is 20% or twice the measured noise, whichever is larger; a run
so noisy that this exceeds 50% cannot judge anything and fails as such.
"""

from __future__ import annotations

import json
from pathlib import Path
from statistics import median

THRESHOLD = 0.20
#: The threshold stays this many times above the measured noise.
NOISE_FACTOR = 2.0
#: Beyond this threshold the run is too noisy to tell a regression from chance.
MAX_THRESHOLD = 0.50
#: Pixel tolerances against the openslide server (both re-encode JPEG tiles:
#: typical mean difference ~1, worst tile ~8 on the benchmark slide).
PIXEL_MEAN_MAX = 3.0
PIXEL_TILE_MAX = 16.0


def _changes(current: dict[str, float], baseline: dict[str, float], prefix: str) -> list[float]:
    return [current[k] / baseline[k] - 1 for k in current
            if k.startswith(prefix) and baseline.get(k)]


def absolute_problems(current: dict[str, float]) -> list[str]:
    """What is wrong with this run by itself: errors, pixels (empty: nothing)."""
    out = [f"{k[len('error_rate/'):]}: {v:.2%} of our answers were errors"
           for k, v in sorted(current.items()) if k.startswith("error_rate/") and v > 0]
    if "pixels/mean_abs_diff" not in current:
        out.append("the pixel check did not run (no same-pixels record for Microtome)")
    else:
        if current["pixels/shape_mismatches"]:
            out.append(f"{current['pixels/shape_mismatches']:.0f} sample tile(s) have the "
                       "wrong shape")
        if current["pixels/mean_abs_diff"] > PIXEL_MEAN_MAX:
            out.append(f"pixels differ from the reference: mean |diff| "
                       f"{current['pixels/mean_abs_diff']:g} > {PIXEL_MEAN_MAX:g}")
        if current["pixels/max_tile_mean_abs_diff"] > PIXEL_TILE_MAX:
            out.append(f"a sample tile differs from the reference: mean |diff| "
                       f"{current['pixels/max_tile_mean_abs_diff']:g} > {PIXEL_TILE_MAX:g}")
    return out


def noise_of(current: dict[str, float], family: str = "") -> float:
    """Median spread between repeats over the scenarios of one family of figures
    (``ratio_vs_``, ``cpu_s_per_1000/``; "" = all); 0 without repeats."""
    values = [v for k, v in current.items() if k.startswith("noise/" + family)]
    return median(values) if values else 0.0


def _judge(label: str, changes: list[float], noise: float, worse: int) -> tuple[str, bool]:
    """One family: its median change against max(20%, 2 x its noise).  `worse` is
    the sign of a regression (-1: a drop is bad, +1: a rise is bad)."""
    threshold = max(THRESHOLD, NOISE_FACTOR * noise)
    m = median(changes)
    line = (f"  median {label} change: {m:+.0%} (noise between repeats {noise:.0%}, "
            f"threshold {threshold:.0%})")
    if threshold > MAX_THRESHOLD:
        return line + "  <-- FAIL: too noisy to judge; re-run on a quieter machine", True
    if worse * m > threshold:
        return line + "  <-- REGRESSION", True
    return line, False


def compare(current: dict[str, float], baseline: dict[str, float]) -> tuple[list[str], bool]:
    """Lines to print and whether the run failed (regression, errors, pixels, noise)."""
    lines = []
    for key in sorted(set(current) | set(baseline)):
        if key.startswith(("noise/", "error_rate/", "pixels/")):
            continue
        new, old = current.get(key), baseline.get(key)
        if new is None or old is None or old == 0:
            lines.append(f"  {key}: {old} -> {new} (not comparable)")
        else:
            lines.append(f"  {key}: {old:g} -> {new:g} ({new / old - 1:+.0%})")
    problems = absolute_problems(current)
    failed = bool(problems)
    lines += [f"  FAIL: {p}" for p in problems]
    ratio = _changes(current, baseline, "ratio_vs_")
    if ratio:
        line, bad = _judge("throughput-ratio", ratio, noise_of(current, "ratio_vs_"), -1)
        lines.append(line)
        failed |= bad
    cpu = _changes(current, baseline, "cpu_s_per_1000/")
    if cpu:
        line, bad = _judge("CPU-per-tile", cpu, noise_of(current, "cpu_s_per_1000/"), +1)
        lines.append(line)
        failed |= bad
    if not ratio and not cpu:
        failed = True
        lines.append("  FAIL: nothing comparable (did the Microtome tile server run?)")
    return lines, failed


def check(current: dict[str, float], baseline_path: Path, update: bool) -> int:
    problems = absolute_problems(current)
    if problems and (update or not baseline_path.exists()):
        print("FAIL: not recording a broken run as the baseline:\n  " + "\n  ".join(problems))
        return 1
    if update or not baseline_path.exists():
        baseline_path.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
        print(f"baseline recorded in {baseline_path}")
        return 0
    baseline = json.loads(baseline_path.read_text())
    lines, failed = compare(current, baseline)
    print("quick benchmark vs baseline:")
    print("\n".join(lines))
    if failed:
        print("FAIL: see above — errors or wrong pixels from our server, a slower tile path "
              "than the baseline, or a run too noisy to judge (if a speed change is "
              "intended: `python -m bench --quick --update-baseline`).")
        return 1
    print("OK: no errors, pixels as the reference, no regression beyond the threshold.")
    return 0
