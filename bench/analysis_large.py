"""The ``analysis_large`` record (``python -m bench.analysis --large-only``): nucleus
detection on the 65536 x 49152 slide, 1 vs 2 worker processes and peak memory by area."""

from __future__ import annotations

from typing import Any

from bench.analysis import render as _render


def render(figures: list[dict[str, Any]]) -> str:
    return _render(figures).replace("## Analysis: nucleus detection",
                                    "## Analysis: nucleus detection on a large slide", 1)
