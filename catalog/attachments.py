"""Files attached to an image: what the bytes are (sniffed), and where they live.

The type is decided from the content, never from the client's Content-Type or
the file name's extension: a file claiming to be a PDF but holding HTML is
stored as ``application/octet-stream`` and is only ever downloaded (as an
attachment, with ``nosniff``), so it cannot run in the site's origin.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

#: Types we recognise and may label as such on download; anything else is octet-stream.
PDF = "application/pdf"
CSV = "text/csv"
TEXT = "text/plain"
OCTET = "application/octet-stream"
_MAGIC = ((b"%PDF-", PDF), (b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
          (b"PK\x03\x04", "application/zip"))
_MARKUP = (b"<!doctype", b"<html", b"<script", b"<svg", b"<?xml", b"<body", b"<iframe")


def sniff(head: bytes, filename: str) -> str:
    """The content type of a file from its first bytes (and, for text, its name)."""
    for magic, ctype in _MAGIC:
        if head.startswith(magic):
            return ctype
    lowered = head[:1024].lstrip().lower()
    if any(lowered.startswith(m) for m in _MARKUP) or b"<script" in lowered:
        return OCTET  # markup is never labelled as something a browser would render
    if b"\x00" in head:
        return OCTET
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # a cut multi-byte character at the end is fine
            return OCTET
    return CSV if filename.lower().endswith((".csv", ".tsv")) else TEXT


def safe_filename(name: str) -> str:
    """A file name to show and to put in Content-Disposition: no path, no quotes."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(c for c in base if c.isprintable() and c not in '"<>;\r\n').strip(" .")
    return cleaned[:255] or "attachment"


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback and the exact name in RFC 5987 form."""
    from urllib.parse import quote

    ascii_name = filename.encode("ascii", "replace").decode().replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


def finish(tmp: Path, dest: Path) -> None:
    """Move a fully written temporary file into place (same folder tree, so atomic)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


class Hasher:
    """SHA-256 and size of a stream as it is written."""

    def __init__(self) -> None:
        self.h = hashlib.sha256()
        self.size = 0
        self.head = b""

    def update(self, chunk: bytes) -> None:
        if len(self.head) < 4096:
            self.head += chunk[:4096 - len(self.head)]
        self.h.update(chunk)
        self.size += len(chunk)
