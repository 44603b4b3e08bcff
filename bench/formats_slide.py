"""The ``formats_slide`` record (``python -m bench.formats slide``): conversion of the
benchmark slide against libvips, rendered by the Formats suite's own renderer."""

from __future__ import annotations

from typing import Any

from bench.formats import render as _render


def render(figures: list[dict[str, Any]]) -> str:
    return _render(figures).replace("## Formats", "## Conversion speed against libvips", 1)
