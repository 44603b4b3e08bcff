"""``python -m bench`` (make bench) and ``python -m bench --quick`` (make bench-quick).

Full: generates the 65536 x 49152 slide (cached), times our conversion and
vips, runs the tile, IIIF and thumbnail suites against every peer and the
extra suites, saves each suite's raw record in ``bench/records/<suite>.json``
and regenerates ``bench/RESULTS.md`` from all records (``--report-only``: only
that).
Quick (< 2 min): a 32768 x 24576 slide, Microtome vs the openslide server at
concurrency 32, written to ``bench/results/quick.jsonl`` and compared with
``bench/results/quick-baseline.json`` (exit 1 when a ratio drops > 20%).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from bench import guard, records, report
from bench.run import RESULTS, WORK, Config, run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="< 2 min regression guard")
    ap.add_argument("--update-baseline", action="store_true",
                    help="with --quick: record this run as the new baseline")
    ap.add_argument("--pass-seconds", type=float,
                    help="time bound of one IIIF/thumbnail/plug-in pass")
    ap.add_argument("--pass-requests", type=int,
                    help="tiles per tile pass (the same first N of each list for every server)")
    ap.add_argument("--size", help="slide WIDTHxHEIGHT (default 65536x49152, quick 16384x12288)")
    ap.add_argument("--concurrency", help="comma-separated, e.g. 8,32,64")
    ap.add_argument("--peers", help="comma-separated subset of openslide,large_image,iipimage")
    ap.add_argument("--reuse-conversions", action="store_true",
                    help="use cached vips/OME-Zarr outputs instead of re-timing conversions")
    ap.add_argument("--no-extra-suites", action="store_true",
                    help="skip plug-in suites such as bench/annotations.py")
    ap.add_argument("--report-only", action="store_true",
                    help="regenerate RESULTS.md from the records in bench/records/")
    args = ap.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the `finally` blocks stop every server we started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.report_only:
        print(f"wrote {report.write_results()}")
        return 0
    cfg = Config.quick_() if args.quick else Config.full()
    if args.pass_seconds:
        cfg.pass_seconds = args.pass_seconds
    if args.pass_requests:
        cfg.pass_requests = args.pass_requests
    if args.size:
        cfg.width, cfg.height = (int(v) for v in args.size.lower().split("x"))
    if args.concurrency:
        cfg.concurrencies = [int(c) for c in args.concurrency.split(",")]
    if args.peers is not None:
        cfg.peers = [p for p in args.peers.split(",") if p]
    if args.no_extra_suites:
        cfg.extra_suites = False
    if args.reuse_conversions:
        cfg.convert_always = False
    # The full run streams its lines to bench/work/full.jsonl; its record is saved
    # at each checkpoint. The quick run's lines stay in bench/results/ for the guard.
    out = RESULTS / "quick.jsonl" if args.quick else WORK / "full.jsonl"
    tiles = records.Recording("tiles", " ".join(["python -m bench", *(argv or sys.argv[1:])]))

    def checkpoint(recs: list[dict]) -> None:
        if not args.quick:
            tiles.figures = list(recs)
            tiles.save()
            report.write_results()

    recs = run(cfg, out, checkpoint)
    if args.quick:
        return guard.check(report.quick_summary(recs), RESULTS / "quick-baseline.json",
                           args.update_baseline)
    checkpoint(recs)
    print(f"wrote {Path(__file__).parent / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
