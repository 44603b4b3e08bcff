"""``python -m bench.X`` for suites of one shape (bench.s3tiles, bench.tiledb): a slide
size and a tile count from ``--quick`` / ``--size WxH`` / ``--tiles N``, the suite's
figures collected into one `records.Recording` (each with the load average when it
was measured), the suite's section printed, the record saved and RESULTS.md
regenerated."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterable
from typing import Any

from bench import records

Collect = Callable[[int, int, int], Iterable[dict[str, Any]]]


def main(suite: str, description: str, collect: Collect,
         render: Callable[[list[dict[str, Any]]], str], *,
         full: tuple[int, int, int], quick: tuple[int, int, int],
         argv: list[str] | None = None) -> int:
    """Run ``collect(width, height, tiles)`` and save its figures as the ``suite`` record.

    ``full`` / ``quick`` are the default (width, height, tiles) without / with --quick.
    """
    ap = argparse.ArgumentParser(prog=f"python -m bench.{suite}", description=description)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--size", default=None, help="slide WIDTHxHEIGHT")
    ap.add_argument("--tiles", type=int, default=None)
    args = ap.parse_args(argv)
    w, h, n = quick if args.quick else full
    if args.size:
        w, h = (int(v) for v in args.size.lower().split("x"))
    n = args.tiles or n
    command = (f"python -m bench.{suite}" + (" --quick" if args.quick else "")
               + f" --size {w}x{h} --tiles {n}")
    rec = records.Recording(suite, command, quick=args.quick)
    for fig in collect(w, h, n):
        fig.setdefault("loadavg", [round(x, 2) for x in os.getloadavg()])
        rec.add(fig)
        print({k: v for k, v in fig.items() if not isinstance(v, dict)}, flush=True)
    print(render(rec.figures))
    print(f"wrote {records.save_and_report(rec)}")
    return 0
