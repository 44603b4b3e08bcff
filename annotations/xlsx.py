"""A minimal streaming .xlsx (Office Open XML spreadsheet) writer, no dependency.

One sheet, a header row, then rows of numbers, text, dates (written as ISO
text) and empty cells.  Strings are inline (no shared-string table), so rows
are written as they come with constant memory: the sheet is a deflated
member of a zip in a temporary file.  Synchronous: call from an executor.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import zipfile
from collections.abc import Sequence
from decimal import Decimal
from typing import IO, Any
from xml.sax.saxutils import escape

from microtome.pyramid.errors import TooLarge

#: Excel's limit, header row included.
MAX_ROWS = 1_048_576
#: Excel cells hold at most this many characters.
MAX_CELL = 32_767

_XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_OX = "http://schemas.openxmlformats.org/"
_REL = _OX + "officeDocument/2006/relationships"
_CT = "application/vnd.openxmlformats-"
_CONTENT_TYPES = (
    f'{_XML}<Types xmlns="{_OX}package/2006/content-types">'
    f'<Default Extension="rels" ContentType="{_CT}package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    f'<Override PartName="/xl/workbook.xml" '
    f'ContentType="{_CT}officedocument.spreadsheetml.sheet.main+xml"/>'
    f'<Override PartName="/xl/worksheets/sheet1.xml" '
    f'ContentType="{_CT}officedocument.spreadsheetml.worksheet+xml"/></Types>')
_RELS = (f'{_XML}<Relationships xmlns="{_OX}package/2006/relationships">'
         f'<Relationship Id="rId1" Type="{_REL}/officeDocument" Target="xl/workbook.xml"/>'
         "</Relationships>")
_WORKBOOK = (f'{_XML}<workbook xmlns="{_OX}spreadsheetml/2006/main" xmlns:r="{_REL}">'
             '<sheets><sheet name="annotations" sheetId="1" r:id="rId1"/></sheets></workbook>')
_WORKBOOK_RELS = (f'{_XML}<Relationships xmlns="{_OX}package/2006/relationships">'
                  f'<Relationship Id="rId1" Type="{_REL}/worksheet" '
                  'Target="worksheets/sheet1.xml"/></Relationships>')
_SHEET_HEAD = f'{_XML}<worksheet xmlns="{_OX}spreadsheetml/2006/main"><sheetData>'
_SHEET_TAIL = "</sheetData></worksheet>"


def _text(value: str) -> str:
    # XML 1.0 forbids most control characters; a cell keeps what it may hold.
    clean = "".join(c for c in value[:MAX_CELL] if c >= " " or c in "\t\n\r")
    return f'<c t="inlineStr"><is><t xml:space="preserve">{escape(clean)}</t></is></c>'


def cell(value: Any) -> str:
    if value is None:
        return "<c/>"
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, bool):
        return f'<c t="b"><v>{int(value)}</v></c>'
    if isinstance(value, int | float):
        return f"<c><v>{value!r}</v></c>" if value == value and abs(value) != float("inf") \
            else "<c/>"
    if isinstance(value, dt.datetime | dt.date):
        return _text(value.isoformat())
    return _text(str(value))


class XlsxWriter:
    def __init__(self, header: Sequence[str]) -> None:
        self.file: IO[bytes] = tempfile.TemporaryFile()
        self.zip = zipfile.ZipFile(self.file, "w", zipfile.ZIP_DEFLATED, compresslevel=1)
        for name, text in (("[Content_Types].xml", _CONTENT_TYPES), ("_rels/.rels", _RELS),
                           ("xl/workbook.xml", _WORKBOOK),
                           ("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)):
            self.zip.writestr(name, text)
        self.sheet = self.zip.open("xl/worksheets/sheet1.xml", "w", force_zip64=True)
        self.sheet.write(_SHEET_HEAD.encode())
        self.n = 0
        self.rows([tuple(header)])

    def rows(self, rows: Sequence[Sequence[Any]]) -> None:
        if self.n + len(rows) > MAX_ROWS:
            raise TooLarge(f"an Excel sheet holds at most {MAX_ROWS - 1} rows: narrow the "
                           "filter or export CSV", {"limit": MAX_ROWS - 1})
        self.n += len(rows)
        self.sheet.write("".join(
            "<row>" + "".join(cell(v) for v in r) + "</row>" for r in rows).encode())

    def finish(self) -> IO[bytes]:
        """The finished file, positioned at its start."""
        self.sheet.write(_SHEET_TAIL.encode())
        self.sheet.close()
        self.zip.close()
        self.file.seek(0)
        return self.file

    def abort(self) -> None:
        self.file.close()
