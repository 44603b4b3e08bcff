"""An optional local disk cache of remote (S3) chunks, shared by the processes of one host.

Encoded chunks of images in object storage are kept as files under one folder
(``MICROTOME_CHUNK_CACHE_DIR``), bounded in bytes (``MICROTOME_CHUNK_CACHE_MB``)
with least-recently-used eviction.  Several `tiles`/`serve` processes on one
machine may share the folder:

- Writes are atomic: each entry is written to a temporary file in the same
  folder and renamed over its name, so a reader sees a whole entry or none.
- Each entry carries a header (magic, length, crc32c of the body): a file that
  is short or damaged (a crash before the data reached the disk) is a miss and
  is removed, never served.
- Keys name the image's location, its pixel version and the chunk, so a
  replaced image never sees its predecessor's chunks; entries of an old
  version age out.
- Recency is the file's mtime, bumped on every hit.  Each process counts what
  it writes; past a tenth of the bound it scans the folder and removes the
  oldest entries down to 90 % of the bound, under a non-blocking lock (one
  process evicts at a time; the others go on).  Unlinking a file another
  process is reading is harmless on POSIX.

Calls block (file I/O): they run on the tile server's executor threads,
never on the event loop.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import struct
import tempfile
import threading
from pathlib import Path

import google_crc32c

MAGIC = b"MTC1"
_HEADER = struct.Struct("<4sQI")  # magic, body length, crc32c


class DiskChunkCache:
    """Chunks as files under ``root`` (two-level fan-out), at most ``max_bytes`` in total."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = max(0, int(max_bytes))
        self.root.mkdir(parents=True, exist_ok=True)
        self._written = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self._trim()

    @staticmethod
    def key(*parts: object) -> str:
        """A file name for the parts (image location, version, level, chunk coordinates)."""
        return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / key[2:]

    def get(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
        except (FileNotFoundError, NotADirectoryError):
            self.misses += 1
            return None
        except OSError:
            self.misses += 1
            return None
        body = _unwrap(raw)
        if body is None:  # short or damaged: never served
            with contextlib.suppress(OSError):
                path.unlink()
            self.misses += 1
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recency for LRU eviction
        self.hits += 1
        return body

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` (atomically); disk errors are ignored: a cache may fail."""
        if self.max_bytes <= 0 or len(data) > self.max_bytes // 8:
            return
        path = self._path(key)
        raw = _HEADER.pack(MAGIC, len(data), google_crc32c.value(data)) + data
        try:
            path.parent.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(raw)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError:
            return
        with self._lock:
            self._written += len(raw)
            due = self._written > self.max_bytes // 10
            if due:
                self._written = 0
        if due:
            self._trim()

    def nbytes(self) -> int:
        """Bytes of every entry now in the folder (all processes)."""
        return sum(size for _, size, _ in self._entries())

    def _entries(self) -> list[tuple[float, int, Path]]:
        out = []
        for sub in self.root.iterdir() if self.root.is_dir() else ():
            if not sub.is_dir() or len(sub.name) != 2:
                continue
            with os.scandir(sub) as it:
                for entry in it:
                    try:
                        st = entry.stat()
                    except OSError:
                        continue
                    if entry.name.startswith(".tmp-"):
                        continue
                    out.append((st.st_mtime, st.st_size, Path(entry.path)))
        return out

    def _trim(self) -> None:
        """Evict the least recently used entries down to 90 % of the bound (one process
        at a time; the others skip)."""
        try:
            lock = os.open(self.root / ".evict.lock", os.O_CREAT | os.O_RDWR, 0o644)
        except OSError:
            return
        try:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return
            entries = self._entries()
            total = sum(size for _, size, _ in entries)
            if total <= self.max_bytes:
                return
            goal = self.max_bytes * 9 // 10
            for _, size, path in sorted(entries):
                with contextlib.suppress(OSError):
                    path.unlink()
                total -= size
                if total <= goal:
                    break
        finally:
            os.close(lock)


def _unwrap(raw: bytes) -> bytes | None:
    if len(raw) < _HEADER.size:
        return None
    magic, n, crc = _HEADER.unpack_from(raw)
    body = raw[_HEADER.size:]
    if magic != MAGIC or n != len(body) or google_crc32c.value(body) != crc:
        return None
    return body


#: The process's disk cache, None when off (`configure`).
DISK: DiskChunkCache | None = None


def configure(root: Path | None, max_bytes: int) -> DiskChunkCache | None:
    """Turn the disk cache on (a folder and a bound) or off (``root`` None)."""
    global DISK
    DISK = DiskChunkCache(root, max_bytes) if root is not None and max_bytes > 0 else None
    return DISK
