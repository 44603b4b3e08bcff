"""Raw records of benchmark suites: one JSON file per suite in ``bench/records/``.

Every suite — run by ``python -m bench`` or on its own (``python -m bench.X``) —
keeps its measurements as a list of plain dicts ("figures") and saves them
with where and when they were measured::

    from bench import records

    rec = records.Recording("retrieval", "python -m bench.retrieval --vectors 100000")
    rec.add({"kind": "index", "n": 100000, "hnsw_p50_ms": 16.4})   # as many as needed
    rec.save()            # bench/records/retrieval.json, then RESULTS.md is regenerated

The file holds the suite name, the UTC date, the git commit, the command, the
machine (CPU, cores, memory, Python), the load average at start and at end,
and the figures.  ``bench/RESULTS.md`` is rendered only from these files
(``bench.report.write_results``): each suite module's ``render(figures) -> str``
turns its figures into a Markdown section (starting with ``## Title``), and
the generator adds the provenance line.  A suite not run this time keeps
its last file, shown with its own date.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RECORDS = BENCH / "records"


def _commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(BENCH), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _machine() -> dict[str, Any]:
    cpu, mem_kb = platform.processor() or "unknown", 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {"cpu_model": cpu, "cores": os.cpu_count(), "memory_gb": round(mem_kb / 1024**2, 1),
            "python": sys.version.split()[0], "kernel": platform.release()}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class Recording:
    """The figures of one suite run; ``save()`` writes ``bench/records/<suite>.json``.

    ``suite`` is the module's short name (``bench.annotations`` -> ``annotations``),
    which is how the generator finds the module's ``render``.  A Recording is
    callable, so it can be passed where a ``record(dict)`` function is expected.
    """

    def __init__(self, suite: str, command: str, *, quick: bool = False,
                 directory: Path | None = None) -> None:
        self.suite = suite
        self.command = command
        self.quick = quick
        self.directory = directory or RECORDS
        self.started = time.time()
        self.load_start = _load()
        self.figures: list[dict[str, Any]] = []

    def add(self, figure: dict[str, Any]) -> None:
        self.figures.append(figure)

    __call__ = add

    def document(self, status: str = "ok") -> dict[str, Any]:
        return {"suite": self.suite, "status": status,
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(self.started)),
                "elapsed_s": round(time.time() - self.started, 1),
                "commit": _commit(), "command": self.command, "quick": self.quick,
                "machine": _machine(),
                "load": {"start": self.load_start, "end": _load()},
                "figures": self.figures}

    def save(self, status: str = "ok") -> Path:
        """Write the record (atomically: a reader never sees half a file)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{self.suite}.json"
        tmp = path.with_suffix(".json.partial")
        tmp.write_text(json.dumps(self.document(status), indent=1, default=str) + "\n")
        tmp.replace(path)
        return path


def load(suite: str, directory: Path | None = None) -> dict[str, Any] | None:
    """The last saved record of ``suite``, or None."""
    path = (directory or RECORDS) / f"{suite}.json"
    if not path.exists():
        return None
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def save_and_report(rec: Recording, status: str = "ok") -> Path:
    """Save a standalone suite's record, then regenerate RESULTS.md from every record."""
    from bench import report

    rec.save(status)
    return report.write_results()
