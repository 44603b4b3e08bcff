"""Put the sample slides into the catalog for `make run` (idempotent).

    python -m microtome.samples [DIR]

Imports every file of DIR into the "Samples" project through the normal job
queue.  Without DIR (or when it does not exist) a synthetic multi-level slide
is generated under var/ so that a fresh clone still has something to show.
A sample that fails to convert is reported on one line and skipped: the exit
status is 0 unless the catalog itself cannot be reached.
"""

from __future__ import annotations

import sys
from pathlib import Path

from microtome.core.settings import from_env

PROJECT = "Samples"


def synthetic_folder(var_dir: Path) -> Path:
    from microtome.converters.synthetic import write_slide

    folder = var_dir / "synthetic"
    slide = folder / "synthetic-slide.svs"
    if not slide.exists():
        folder.mkdir(parents=True, exist_ok=True)
        partial = slide.with_suffix(".partial")
        print("no sample folder: generating a synthetic 16384 x 12288 slide", flush=True)
        write_slide(partial, 16384, 12288)
        partial.rename(slide)
    return folder


def main(argv: list[str]) -> int:
    from microtome.admin import main_import
    from microtome.cli import quiet_third_party_warnings

    quiet_third_party_warnings()
    settings = from_env()
    folder = Path(argv[0]) if argv and argv[0] else None
    if folder is None or not folder.is_dir():
        folder = synthetic_folder(settings.var_dir)
    print(f"importing sample slides from {folder} into project {PROJECT!r}", flush=True)
    status = main_import(folder, PROJECT, settings=settings)
    if status == 1:
        print("some samples could not be converted (listed above); the app starts anyway")
        return 0
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
