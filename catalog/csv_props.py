"""Bulk image properties from a CSV keyed by file name: parse and check, pure.

The first column names the image (its original file name, else its name in
the project); every other column is a property key.  Nothing is applied
unless every row is right: the answer is a report with one entry per row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from microtome.catalog import properties
from microtome.pyramid import errors

MAX_BYTES = 5 * 1024**2
MAX_ROWS = 10_000
FILE_COLUMNS = ("file", "filename", "file_name", "image", "name")


@dataclass
class RowReport:
    row: int  # 1-based line of the CSV (the header is line 1)
    file: str
    image_id: int | None = None
    error: str | None = None
    properties: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"row": self.row, "file": self.file, "image_id": self.image_id,
                "status": "error" if self.error else "ok", "error": self.error,
                "properties": len(self.properties)}


@dataclass
class Parsed:
    keys: list[str]
    rows: list[RowReport]


def decode(raw: bytes) -> str:
    """UTF-8 text (a BOM is allowed); anything else is refused with the line it breaks on."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise errors.Unprocessable(
            "the CSV is not valid UTF-8 (save it as 'CSV UTF-8'); nothing was applied",
            {"applied": False, "rows": [{"row": line, "file": "", "image_id": None,
                                         "status": "error", "properties": 0,
                                         "error": f"not valid UTF-8 at byte {exc.start}"}]}
        ) from None


def parse(text: str) -> Parsed:
    """Header and rows, every key and value checked; row errors are kept, not raised."""
    sample = text[:4096]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        raise errors.Unprocessable("the CSV is empty", {"applied": False, "rows": []}) \
            from None
    if not header or header[0].strip().lower() not in FILE_COLUMNS:
        raise errors.Unprocessable(
            "the first column must be 'file' (the image's file name)",
            {"applied": False, "rows": [{"row": 1, "file": "", "image_id": None,
                                         "status": "error", "properties": 0,
                                         "error": "first column is not 'file'"}]})
    try:
        keys = [properties.check_key(k) for k in header[1:]]
    except errors.InvalidRequest as exc:
        raise errors.Unprocessable(f"header: {exc.message}", {
            "applied": False, "rows": [{"row": 1, "file": "", "image_id": None,
                                        "status": "error", "properties": 0,
                                        "error": exc.message}]}) from None
    if len(set(keys)) != len(keys):
        raise errors.Unprocessable("the header names a property twice",
                                   {"applied": False, "rows": []})
    rows: list[RowReport] = []
    try:
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            if len(rows) >= MAX_ROWS:
                raise errors.Unprocessable(f"at most {MAX_ROWS} rows per CSV",
                                           {"applied": False, "rows": []})
            rows.append(_row(reader.line_num, cells, keys))
    except csv.Error as exc:
        raise errors.Unprocessable(f"malformed CSV at line {reader.line_num}: {exc}", {
            "applied": False, "rows": [{"row": reader.line_num, "file": "", "image_id": None,
                                        "status": "error", "properties": 0,
                                        "error": "malformed CSV"}]}) from None
    return Parsed(keys, rows)


def _row(line: int, cells: list[str], keys: list[str]) -> RowReport:
    report = RowReport(line, cells[0].strip()[:255])
    if not report.file:
        report.error = "no file name"
    elif len(cells) > len(keys) + 1:
        report.error = f"{len(cells)} cells for {len(keys) + 1} columns"
    else:
        for key, cell in zip(keys, cells[1:], strict=False):
            if cell == "":
                continue  # an empty cell leaves the property as it is
            try:
                report.properties[key] = properties.check_value(cell, key) or ""
            except errors.InvalidRequest as exc:
                report.error = f"{key}: {exc.message}"
                break
    return report


def match(rows: list[RowReport], images: Mapping[str, list[int]]) -> None:
    """Fill each row's image id from {file or name (lower-cased): [image ids]}."""
    seen: dict[int, int] = {}
    for r in rows:
        if r.error:
            continue
        ids = images.get(r.file.lower(), [])
        if not ids:
            r.error = "no image with this file name in the project"
        elif len(ids) > 1:
            r.error = f"{len(ids)} images have this file name; rename them first"
        elif ids[0] in seen:
            r.error = f"the same image as row {seen[ids[0]]}"
        else:
            r.image_id = ids[0]
            seen[ids[0]] = r.row
