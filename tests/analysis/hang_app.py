"""An app that hangs without ever calling ``ctx.check()`` (worker timeout tests).

Module level, so the worker's child process can import it by reference."""

from __future__ import annotations

import time
from typing import Any

from microtome.analysis import AppDescriptor


class HangApp:
    def __init__(self, timeout: float = 600.0) -> None:
        self.descriptor = AppDescriptor(
            name="hang_test", version="1.0.0", title="Hangs", description="never returns",
            params_schema={"type": "object", "properties": {}}, timeout=timeout)

    def run(self, ctx: Any) -> list[Any]:
        ctx.log("hanging")
        ctx.progress(0.1)
        while True:  # deaf to cancels: only killing the process ends it
            time.sleep(0.5)
