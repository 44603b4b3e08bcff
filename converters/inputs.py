"""Turn command-line SRC arguments into conversion sources.

- a file is one source;
- DICOM files (given one by one or found in a folder) are grouped per folder
  and series into one source;
- an MRXS index file is one source and its data folder is not walked;
- an .ibd beside its .imzML belongs to it (imzML pair);
- other folders are walked (hidden files skipped), each file one source.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from .formats.dicom_reader import is_dicom_file


@dataclass
class Source:
    paths: list[Path]
    name: str

    @property
    def display(self) -> str:
        if len(self.paths) == 1:
            return str(self.paths[0])
        return f"{self.paths[0].parent}/ ({len(self.paths)} DICOM files)"


def _series_uid(path: Path) -> str:
    try:
        import pydicom
        ds = pydicom.dcmread(path, stop_before_pixels=True,
                             specific_tags=["SeriesInstanceUID"])
        return str(ds.get("SeriesInstanceUID", ""))
    except Exception:
        return ""


def _walk(folder: Path) -> list[Path]:
    out: list[Path] = []
    skip_dirs: set[Path] = set()
    entries = sorted(folder.iterdir())
    for e in entries:
        if e.is_file() and e.suffix.lower() == ".mrxs":
            skip_dirs.add(e.with_suffix(""))
    for e in entries:
        if e.name.startswith("."):
            continue
        if e.is_dir():
            if e not in skip_dirs:
                out.extend(_walk(e))
        elif e.is_file():
            out.append(e)
    return out


def gather_sources(args: list[Path]) -> tuple[list[Source], list[tuple[Path, str]]]:
    """Sources to convert, plus (path, reason) for arguments that cannot be used."""
    files: list[Path] = []
    problems: list[tuple[Path, str]] = []
    for a in args:
        if a.is_dir():
            try:
                files.extend(_walk(a))
            except PermissionError:
                problems.append((a, "permission denied"))
        elif a.exists():
            files.append(a)
        else:
            problems.append((a, "no such file or directory"))
    sources: list[Source] = []
    dicom: dict[tuple[Path, str], list[Path]] = defaultdict(list)
    seen: set[Path] = set()
    # An .ibd next to its .imzML is that image's data half, not a source.
    imzml = {(f.resolve().parent, f.stem) for f in files if f.suffix.lower() == ".imzml"}
    for f in files:
        key = f.resolve()
        if key in seen:
            continue
        seen.add(key)
        if f.suffix.lower() == ".ibd" and (key.parent, f.stem) in imzml:
            continue
        if is_dicom_file(f):
            dicom[(f.parent, _series_uid(f))].append(f)
        else:
            sources.append(Source([f], f.name))
    for (parent, _uid), group in dicom.items():
        if len(group) == 1:
            sources.append(Source(group, group[0].name))
        else:
            sources.append(Source(sorted(group), parent.resolve().name or "dicom"))
    return sources, problems
