"""``GET /api/images/{id}/export``: the portable OME-Zarr of an image, as one zip.

Our stores keep RGB chunks as JPEG under the ``imagecodecs_jpeg`` codec, which
stock readers (zarr + ome-zarr alone, zarrita/vizarr) do not know.  This route
serves what ``microtome export`` writes — NGFF 0.5 with specification codecs
only (``zstd``, ``blosc`` or ``gzip`` inside ``sharding_indexed``) — packed in
a zip whose root is the store root (``zarr.storage.ZipStore`` opens it as it
is).  Whoever may read the image may download it.

The export is written, one shard at a time (converters.export), to a scratch
folder beside the image, in a thread; the zip is then built in a thread into
a small bounded queue that the handler drains into the response, so neither
the export nor the zip blocks the event loop, memory stays at a few MB per
download whatever the image size, and a client that stops reading stops the
zip.  The entries are stored (the chunks are compressed already) with zip64
sizes.  The scratch folder is removed when the download ends, fails or is
abandoned.  Downloads are limited to ``EXPORTS_AT_ONCE`` at a time per
process (each one is a full read and re-encode of the image).
"""

from __future__ import annotations

import asyncio
import io
import queue
import shutil
import threading
import uuid
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from aiohttp import web

from microtome.catalog.access import require_image_access
from microtome.catalog.db import DB_POOL
from microtome.catalog.jsonio import path_id
from microtome.catalog.state import CATALOG
from microtome.catalog.storage import image_dir, pyramid_path
from microtome.pyramid import errors

#: ``format`` values and what they produce.
FORMATS = {"ome-zarr": "a zip of the portable OME-Zarr (NGFF 0.5, specification codecs)"}
CODECS = ("zstd", "blosc", "gzip")
EXPORTS_AT_ONCE = 2
#: Bytes per piece handed from the zip thread to the response.
PIECE = 1 << 20
#: Pieces buffered between the zip thread and the response (memory bound).
QUEUE_PIECES = 4

_SLOTS: web.AppKey[asyncio.Semaphore] = web.AppKey("export_slots", asyncio.Semaphore)
_DONE = object()


def export_options(q: Mapping[str, str]) -> tuple[str, str]:
    """(format, codec) from the query string; InvalidRequest (400) for anything else."""
    fmt = q.get("format", "ome-zarr")
    codec = q.get("codec", "zstd")
    if fmt not in FORMATS:
        raise errors.InvalidRequest(f"unknown export format {fmt[:40]!r}",
                                    {"formats": sorted(FORMATS)})
    if codec not in CODECS:
        raise errors.InvalidRequest(f"unknown codec {codec[:40]!r}", {"codecs": list(CODECS)})
    return fmt, codec


def zip_entries(root: Path) -> Iterator[tuple[str, Path]]:
    """(name in the zip, file) for every file under ``root``: documents first, the
    root's first (a reader streaming the zip sees the metadata before the chunks)."""
    files = sorted((p for p in root.rglob("*") if p.is_file()),
                   key=lambda p: (len(p.relative_to(root).parts), p))
    names = ("zarr.json", ".zattrs", ".zgroup", ".zarray")
    docs = [p for p in files if p.name in names]
    for p in docs + [p for p in files if p.name not in names]:
        yield p.relative_to(root).as_posix(), p


class _QueueWriter(io.RawIOBase):
    """A write-only, unseekable file whose bytes go, in ``PIECE``-sized pieces, into a
    bounded queue (zipfile then writes data descriptors instead of seeking back)."""

    def __init__(self, out: queue.Queue[object], cancelled: threading.Event) -> None:
        self.out = out
        self.cancelled = cancelled
        self.buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self.buf += b
        while len(self.buf) >= PIECE:
            self._put(bytes(self.buf[:PIECE]))
            del self.buf[:PIECE]
        return len(b)

    def flush_all(self) -> None:
        if self.buf:
            self._put(bytes(self.buf))
            self.buf.clear()

    def _put(self, piece: object) -> None:
        while not self.cancelled.is_set():
            try:
                self.out.put(piece, timeout=0.5)
                return
            except queue.Full:
                continue
        raise _Cancelled


class _Cancelled(Exception):
    pass


def _export_and_zip(src: Path, scratch: Path, codec: str, out: queue.Queue[object],
                    cancelled: threading.Event) -> None:
    """In a thread: export ``src`` into ``scratch``, then zip it into ``out``; the last
    item put is ``_DONE`` or the exception that stopped it."""
    from microtome.converters.export import export

    try:
        res = export(src, scratch, codec=codec, overwrite=True)
        writer = _QueueWriter(out, cancelled)
        with zipfile.ZipFile(writer, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, path in zip_entries(res.path):
                with open(path, "rb") as fh, zf.open(name, "w", force_zip64=True) as dst:
                    shutil.copyfileobj(fh, dst, PIECE)
        writer.flush_all()
        item: object = _DONE
    except _Cancelled:
        return
    except BaseException as e:  # handed to the handler, which logs or maps it
        item = e
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    while not cancelled.is_set():
        try:
            out.put(item, timeout=0.5)
            return
        except queue.Full:
            continue


def _next(out: queue.Queue[object], cancelled: threading.Event) -> object:
    """The next piece; polls, so a thread waiting here ends once the download is over."""
    while not cancelled.is_set():
        try:
            return out.get(timeout=0.5)
        except queue.Empty:
            continue
    return _DONE


async def export_image(request: web.Request) -> web.StreamResponse:
    image_id = path_id(request, "image_id")
    await require_image_access(request, image_id)
    _fmt, codec = export_options(request.query)  # one format so far
    row = await request.app[DB_POOL].fetchrow(
        "SELECT name, storage_path, status FROM images WHERE id = $1", image_id)
    if row is None:
        raise errors.NotFound("image not found")
    if row["status"] != "ready":
        raise errors.Conflict(f"the image is not ready (it is {row['status']})")
    settings = request.app[CATALOG].settings
    remote = settings.storage.url if settings.storage else None
    src = pyramid_path(settings.images_dir, image_id, row["storage_path"], remote)
    if not isinstance(src, Path):
        raise errors.NotImplementedFeature("images kept in remote storage cannot be exported yet")
    if not await asyncio.to_thread((src / "zarr.json").is_file):
        raise errors.NotFound("the image's pyramid is missing")
    slots = request.app[_SLOTS]
    if slots.locked():
        raise errors.Unavailable("too many exports running; retry in a minute", retry_after=60)
    async with slots:
        return await _stream(request, src, image_dir(settings.images_dir, image_id),
                             _filename(row["name"], image_id), codec)


def _filename(name: str | None, image_id: int) -> str:
    base = "".join(c if c.isalnum() or c in "-_." else "_" for c in (name or ""))[:80]
    return f"{base or f'image-{image_id}'}.ome.zarr.zip"


async def _stream(request: web.Request, src: Path, home: Path, filename: str,
                  codec: str) -> web.StreamResponse:
    scratch = home / f"export-{uuid.uuid4().hex}.partial"
    out: queue.Queue[object] = queue.Queue(QUEUE_PIECES)
    cancelled = threading.Event()
    worker = asyncio.ensure_future(asyncio.to_thread(
        _export_and_zip, src, scratch, codec, out, cancelled))
    resp: web.StreamResponse | None = None
    try:
        while True:
            item = await asyncio.to_thread(_next, out, cancelled)
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                if resp is None:
                    raise item  # nothing sent yet: mapped to a JSON error
                raise ConnectionAbortedError("export failed mid-download") from item
            if resp is None:  # headers go out with the first bytes, once the export worked
                resp = web.StreamResponse(headers={
                    "Content-Type": "application/zip",
                    "Content-Disposition": f'attachment; filename="{filename}"',
                    "Cache-Control": "private, no-store"})
                await resp.prepare(request)
            await resp.write(item)  # type: ignore[arg-type]
        if resp is None:  # an empty zip cannot happen, but answer something valid
            raise errors.StorageError("the export produced nothing")
        await resp.write_eof()
        return resp
    finally:
        cancelled.set()
        await asyncio.shield(worker)
        await asyncio.to_thread(shutil.rmtree, scratch, True)


def setup(app: web.Application) -> None:
    app[_SLOTS] = asyncio.Semaphore(EXPORTS_AT_ONCE)
    app.router.add_get("/api/images/{image_id}/export", export_image)
