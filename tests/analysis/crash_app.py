"""An app that streams objects and then crashes mid-run (streaming tests).

Module level, so the worker's child process can import it by reference."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from shapely.geometry import box

from microtome.analysis import AppDescriptor, Feature


class CrashApp:
    """Yields ``before`` small squares, calls ``hook`` (in-thread runs: the test
    looks at the server mid-run), then raises or, with ``exit_code``, kills its
    own process (a child dying without a word)."""

    def __init__(self, before: int, hook: Callable[[], None] | None = None,
                 exit_code: int | None = None) -> None:
        self.before, self.hook, self.exit_code = before, hook, exit_code
        self.descriptor = AppDescriptor(
            name="crash_test", version="1.0.0", title="Crashes",
            description="streams objects, then fails",
            params_schema={"type": "object", "properties": {}}, timeout=600)

    def run(self, ctx: Any) -> Iterator[Feature]:
        for i in range(self.before):
            x, y = 10 + 12 * (i % 50), 10 + 12 * (i // 50)
            yield Feature(box(x, y, x + 8, y + 8), "Nucleus", (30, 60, 200),
                          {"Area px^2": 64.0}, "detection")
        ctx.log("crashing")
        if self.hook is not None:
            self.hook()
        if self.exit_code is not None:
            time.sleep(1)  # lets the child's queue carry its last messages out
            os._exit(self.exit_code)
        raise RuntimeError("crashed mid-stream")
