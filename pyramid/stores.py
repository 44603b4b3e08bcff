"""Byte stores that hold images, addressed by URL: a local folder or ``s3://bucket/prefix``.

One small interface (`Store`) is all the reader, the converter's upload and
the catalog need: whole objects, byte ranges (several per call, coalesced),
listing, put, exists, delete.  Keys are ``/``-separated and relative to the
store's root.  Calls block: callers on an event loop run them in an
executor (the remote client releases the GIL while it waits).

S3 access goes through obstore (chosen by measurement, bench/s3clients.py):
credentials, region and endpoint come from the standard AWS variables
(``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``, ...), which the client reads
itself.  Transient failures (5xx, refused or stalled connections) are
retried with exponential backoff for at most `deadline_s`; after that the
caller gets `Unavailable` (HTTP 503 with Retry-After), never a hang.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from .errors import InvalidRequest, Unavailable
from .optional import require

#: ``scheme://`` at the start of a location (a local path never has one).
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
SCHEMES = ("s3",)


class ObjectMissing(KeyError):
    """The key is not in the store (a missing image or chunk: callers decide which)."""


class StoreUnusable(Exception):
    """The store cannot be used at all: bucket missing, credentials refused.

    Raised by `Store.check` at start-up, with a message fit for one line on stderr.
    """


@dataclass(frozen=True)
class StoreStats:
    """Requests made by one store object (for metrics and the bench)."""

    gets: int
    bytes: int


class Store(Protocol):
    """A folder of objects."""

    #: The store's location as the user wrote it (local path or URL).
    url: str
    #: False for local folders: reads are cheap, no batching needed.
    remote: bool

    def child(self, prefix: str) -> Store:
        """The store rooted at ``prefix`` under this one."""
        ...

    def get(self, key: str) -> bytes:
        """The whole object; ObjectMissing when absent."""
        ...

    def get_ranges(self, key: str, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """(offset, length) byte ranges of one object, in one coalesced round trip."""
        ...

    def get_suffix(self, key: str, n: int) -> tuple[bytes, int]:
        """The last ``n`` bytes and the object's size (one request: shard indexes)."""
        ...

    def exists(self, key: str) -> bool: ...

    def version(self, key: str) -> str:
        """A token that changes whenever the object is replaced; ObjectMissing when absent."""
        ...

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under ``prefix`` (recursive), relative to the store."""
        ...

    def put(self, key: str, data: bytes) -> None: ...

    def put_file(self, key: str, path: Path) -> None: ...

    def delete_prefix(self, prefix: str) -> None:
        """Remove every object under ``prefix`` (missing is fine)."""
        ...

    def check(self) -> None:
        """Raise StoreUnusable when the store cannot be read at all."""
        ...

    def stats(self) -> StoreStats: ...


def scheme_of(location: str | os.PathLike[str]) -> str | None:
    """The URL scheme of ``location`` (``s3``), or None for a local path."""
    if not isinstance(location, str):
        return None
    m = _SCHEME.match(location)
    return m.group(1).lower() if m else None


def is_remote(location: str | os.PathLike[str]) -> bool:
    return scheme_of(location) is not None


def check_location(location: str) -> None:
    """InvalidRequest for a URL whose scheme we do not serve (never a local folder named ``x:``)."""
    scheme = scheme_of(location)
    if scheme is not None and scheme not in SCHEMES:
        raise InvalidRequest(f"unsupported storage URL scheme {scheme!r} "
                             f"(use a local path or s3://bucket/prefix)")
    if scheme == "s3":
        bucket = location[5:].split("/", 1)[0]
        if not bucket:
            raise InvalidRequest("an s3:// URL needs a bucket: s3://bucket/prefix")


def join(location: str | os.PathLike[str], *parts: str) -> str | Path:
    """``location`` / parts, for a local path or a URL alike."""
    if is_remote(location):
        return "/".join([str(location).rstrip("/"), *parts])
    return Path(location).joinpath(*parts)


#: Retry budget for remote calls, seconds (see `configure`).
_DEADLINE_S = 10.0


def configure(deadline_s: float) -> None:
    """Set the retry deadline of stores opened from now on (MICROTOME_STORAGE_DEADLINE_S)."""
    global _DEADLINE_S
    _DEADLINE_S = max(0.5, float(deadline_s))


def open_store(location: str | os.PathLike[str]) -> Store:
    """The store at a local path or URL; InvalidRequest for an unknown scheme."""
    if not is_remote(location):
        return LocalStore(Path(location))
    url = str(location)
    check_location(url)
    require("obstore", "s3")
    bucket, _, prefix = url[5:].partition("/")
    return S3Store(bucket, prefix.strip("/"), deadline_s=_DEADLINE_S)


# -- local folders -------------------------------------------------------------------
class LocalStore:
    """A folder on a local (or shared) file system."""

    remote = False

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.url = str(root)
        self._gets = 0
        self._bytes = 0

    def child(self, prefix: str) -> LocalStore:
        return LocalStore(self.root / prefix)

    def _path(self, key: str) -> Path:
        return self.root / key if key else self.root

    def get(self, key: str) -> bytes:
        try:
            data = self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectMissing(key) from None
        self._gets += 1
        self._bytes += len(data)
        return data

    def get_ranges(self, key: str, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        try:
            fd = os.open(self._path(key), os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectMissing(key) from None
        try:
            out = [os.pread(fd, n, off) for off, n in ranges]
        finally:
            os.close(fd)
        self._gets += len(ranges)
        self._bytes += sum(len(b) for b in out)
        return out

    def get_suffix(self, key: str, n: int) -> tuple[bytes, int]:
        try:
            with open(self._path(key), "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                fh.seek(max(0, size - n))
                data = fh.read(n)
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectMissing(key) from None
        self._gets += 1
        self._bytes += len(data)
        return data, size

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def version(self, key: str) -> str:
        try:
            st = os.stat(self._path(key))
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectMissing(key) from None
        return f"{st.st_ino:x}-{st.st_mtime_ns:x}"

    def list(self, prefix: str = "") -> Iterator[str]:
        base = self._path(prefix)
        if not base.is_dir():
            return
        for dirpath, _, files in os.walk(base):
            for f in files:
                yield Path(dirpath, f).relative_to(self.root).as_posix()

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def put_file(self, key: str, path: Path) -> None:
        dst = self._path(key)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dst)

    def delete_prefix(self, prefix: str) -> None:
        target = self._path(prefix)
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)

    def check(self) -> None:
        if not self.root.is_dir():
            raise StoreUnusable(f"{self.url} is not a directory")

    def stats(self) -> StoreStats:
        return StoreStats(self._gets, self._bytes)


# -- S3 and compatible services -------------------------------------------------------
#: Ranges closer than this are fetched in one request (one shard's neighbouring chunks).
COALESCE_BYTES = 256 * 1024


class S3Store:
    """``s3://bucket/prefix`` through obstore (retries with backoff inside a deadline)."""

    remote = True

    def __init__(self, bucket: str, prefix: str, deadline_s: float = 10.0,
                 _client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.deadline_s = deadline_s
        self._client = _client if _client is not None else _s3_client(bucket, deadline_s)
        self._counter = REMOTE

    def child(self, prefix: str) -> S3Store:
        return S3Store(self.bucket, self._key(prefix), self.deadline_s, self._client)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}".strip("/") if self.prefix else key.strip("/")

    def _call(self, key: str, fn: Any, *args: Any, **kw: Any) -> Any:
        import obstore.exceptions as oe

        try:
            return fn(self._client, *args, **kw)
        except (oe.NotFoundError, FileNotFoundError):  # obstore raises the builtin for 404
            raise ObjectMissing(key) from None
        except (oe.PermissionDeniedError, oe.UnauthenticatedError, PermissionError) as e:
            raise Unavailable("image storage refused our credentials",
                              retry_after=30) from e
        except (oe.BaseError, OSError, RuntimeError, TimeoutError) as e:
            # obstore has already retried with backoff until the deadline.
            raise Unavailable("image storage is unavailable, retry later",
                              retry_after=max(1, round(self.deadline_s / 2))) from e

    def get(self, key: str) -> bytes:
        import obstore

        data = bytes(self._call(key, lambda c: obstore.get(c, self._key(key)).bytes()))
        self._counter.add(1, len(data))
        return data

    def get_ranges(self, key: str, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        import obstore

        if not ranges:
            return []
        if len(ranges) == 1:
            off, n = ranges[0]
            out = [bytes(self._call(key, obstore.get_range, self._key(key), start=off,
                                    length=n))]
            self._counter.add(1, n)
            return out
        got = self._call(key, obstore.get_ranges, self._key(key),
                         starts=[r[0] for r in ranges], lengths=[r[1] for r in ranges],
                         coalesce=COALESCE_BYTES)
        self._counter.add(_coalesced_requests(ranges), sum(r[1] for r in ranges))
        return [bytes(b) for b in got]

    def get_suffix(self, key: str, n: int) -> tuple[bytes, int]:
        import obstore

        def fetch(c: Any) -> tuple[bytes, int]:
            res = obstore.get(c, self._key(key), options={"range": {"suffix": n}})
            size = int(res.meta["size"])
            return bytes(res.bytes()), size

        data, size = self._call(key, fetch)
        self._counter.add(1, len(data))
        return data, size

    def exists(self, key: str) -> bool:
        try:
            self.version(key)
        except ObjectMissing:
            return False
        return True

    def version(self, key: str) -> str:
        import obstore

        meta = self._call(key, obstore.head, self._key(key))
        return str(meta.get("e_tag") or meta["last_modified"].isoformat())

    def list(self, prefix: str = "") -> Iterator[str]:
        import obstore

        base = self._key(prefix)
        full = base + "/" if base else None
        skip = len(self.prefix) + 1 if self.prefix else 0
        pages = self._call(prefix, lambda c: list(obstore.list(c, full, chunk_size=1000)))
        for page in pages:
            for meta in page:
                yield str(meta["path"])[skip:]

    def put(self, key: str, data: bytes) -> None:
        import obstore

        self._call(key, obstore.put, self._key(key), data)

    def put_file(self, key: str, path: Path) -> None:
        import obstore

        self._call(key, obstore.put, self._key(key), Path(path))

    def delete_prefix(self, prefix: str) -> None:
        import obstore

        keys = [self._key(prefix) + "/" + k if prefix else self._key(k)
                for k in (self.child(prefix).list() if prefix else self.list())]
        if prefix and self.exists(prefix):
            keys.append(self._key(prefix))
        for i in range(0, len(keys), 1000):
            self._call(prefix, obstore.delete, keys[i:i + 1000])

    def check(self) -> None:
        import obstore
        import obstore.exceptions as oe

        try:
            next(iter(obstore.list(self._client, self.prefix or None, chunk_size=1)), None)
        except (oe.NotFoundError, FileNotFoundError):
            raise StoreUnusable(f"{self.url}: the bucket does not exist") from None
        except (oe.PermissionDeniedError, oe.UnauthenticatedError, PermissionError):
            raise StoreUnusable(f"{self.url}: access denied (check AWS_ACCESS_KEY_ID / "
                                f"AWS_SECRET_ACCESS_KEY)") from None
        except (oe.BaseError, OSError, RuntimeError) as e:
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            if "NoSuchBucket" in str(e):
                raise StoreUnusable(f"{self.url}: the bucket does not exist") from None
            if any(s in str(e) for s in ("InvalidAccessKeyId", "SignatureDoesNotMatch",
                                         "AccessDenied", "403")):
                raise StoreUnusable(f"{self.url}: access denied (check AWS_ACCESS_KEY_ID / "
                                    f"AWS_SECRET_ACCESS_KEY)") from None
            raise StoreUnusable(f"{self.url}: cannot reach the storage service ({first})") \
                from None

    def stats(self) -> StoreStats:
        """Requests of all remote stores in this process (they share one counter)."""
        return self._counter.snapshot()


def _s3_client(bucket: str, deadline_s: float) -> Any:
    from obstore.store import S3Store as _ObS3

    per_try = max(0.5, deadline_s / 3)
    return _ObS3(
        bucket,
        # An endpoint from AWS_ENDPOINT_URL may be plain http (MinIO, moto, a LAN gateway).
        client_options={"allow_http": True, "timeout": timedelta(seconds=per_try),
                        "connect_timeout": timedelta(seconds=min(2.0, per_try)),
                        "pool_max_idle_per_host": "64"},
        retry_config={"max_retries": 8, "retry_timeout": timedelta(seconds=deadline_s),
                      "backoff": {"init_backoff": timedelta(milliseconds=50),
                                  "max_backoff": timedelta(seconds=2), "base": 2}},
    )


def _coalesced_requests(ranges: Sequence[tuple[int, int]]) -> int:
    """How many GETs obstore makes for ``ranges`` (it merges gaps < COALESCE_BYTES)."""
    spans = sorted(ranges)
    n, end = 0, -1
    for off, length in spans:
        if n == 0 or off - end > COALESCE_BYTES:
            n += 1
            end = off + length
        else:
            end = max(end, off + length)
    return n


class _Counter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.gets = 0
        self.bytes = 0

    def add(self, gets: int, nbytes: int) -> None:
        with self._lock:
            self.gets += gets
            self.bytes += nbytes

    def snapshot(self) -> StoreStats:
        with self._lock:
            return StoreStats(self.gets, self.bytes)


#: Requests of every remote store in this process (the tile server's /metrics, the bench).
REMOTE = _Counter()
