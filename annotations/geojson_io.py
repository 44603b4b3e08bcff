"""GeoJSON import (streamed, COPY, all or nothing) and export (streamed, QuPath-style).

Feature properties understood on import and written on export:
- `classification`: QuPath's {"name": ..., "color": [r, g, b]} (or the older
  "colorRGB" packed int, or a plain name) → the annotation's term, looked up
  by name in the project (created when missing, if allowed);
- `objectType`: "annotation" (default, not stored), "detection", "cell", ...;
- `microtome`: our own block {"terms": [names], "kind", "shape", "producer",
  "id"} so that several terms and rectangle/ellipse parameters survive a
  round trip;
- everything else is kept as the annotation's free `data` and written back.
"""

from __future__ import annotations

import asyncio
import gc
import io
import mmap
import multiprocessing
import os
import re
import threading
from collections import deque
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

import asyncpg
import numpy as np
import orjson
import shapely

from microtome.pyramid.errors import MicrotomeError, TooLarge, Unprocessable

from . import bulk, store, terms
from .geometry import (
    MAX_VERTICES,
    ImageFrame,
    parse_geojson_geometry,
    simple_polygons,
    validate_many,
)
from .render import geometries_json, lod_texts
from .splitter import iter_features

_NAMED = re.compile(r"^feature \d+")
RESERVED = ("classification", "microtome")
BATCH = 5000
COPY_ROWS = 50_000
#: Fewest rows per COPY, and the bytes of a typical feature (a QuPath cell): smaller
#: files are COPYed in about 8 parts so that parsing and COPY overlap at any size.
MIN_COPY_ROWS = 10_000
FEATURE_BYTES = 700


def copy_rows(file_bytes: int) -> int:
    """Rows per COPY for a file of this size (see COPY_ROWS, MIN_COPY_ROWS)."""
    return max(MIN_COPY_ROWS, min(COPY_ROWS, file_bytes // FEATURE_BYTES // 8))


@dataclass(frozen=True)
class ImportOptions:
    repair: bool = True          # make_valid invalid polygons (else reject)
    clip: bool = False           # clip to the image (else reject what reaches outside)
    create_terms: bool = True    # unknown classification names become new terms
    producer: str | None = None  # algorithm run that produced the file
    max_features: int = 5_000_000
    max_feature_bytes: int = 16 << 20


def _fail(index: int, exc: MicrotomeError) -> MicrotomeError:
    detail = {"feature_index": index, "reason": exc.message}
    if isinstance(exc.detail, dict):
        detail.update({k: v for k, v in exc.detail.items() if k != "feature_index"})
    cls = TooLarge if isinstance(exc, TooLarge) else Unprocessable
    msg = exc.message if _NAMED.match(exc.message) else f"feature {index}: {exc.message}"
    return cls(msg, detail)


def _classification(props: dict[str, Any]) -> tuple[tuple[str, str | None], ...]:
    own = props.get("microtome")
    if isinstance(own, dict) and isinstance(own.get("terms"), list):
        names = own["terms"]
        if not all(isinstance(n, str) and n.strip() for n in names):
            raise Unprocessable("microtome.terms must be a list of names")
        color = None
        c = props.get("classification")
        if isinstance(c, dict) and ("color" in c or "colorRGB" in c):
            color = terms.normalize_color(c.get("color", c.get("colorRGB")))
        return tuple((n, color if i == 0 else None) for i, n in enumerate(names))
    c = props.get("classification")
    if c is None:
        return ()
    if isinstance(c, str):
        return ((c, None),) if c.strip() else ()
    if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not c["name"].strip():
        raise Unprocessable("classification must be {\"name\": ..., \"color\": [r, g, b]}")
    raw_color = c.get("color", c.get("colorRGB"))
    return ((c["name"], terms.normalize_color(raw_color) if raw_color is not None else None),)


def _parts(obj: Any) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """(properties, geometry, our `microtome` block) of a decoded feature."""
    if not isinstance(obj, dict) or obj.get("type") != "Feature":
        raise Unprocessable("not a GeoJSON Feature")
    props = obj.get("properties") or {}
    if not isinstance(props, dict):
        raise Unprocessable("properties must be an object")
    geometry = obj.get("geometry")
    if geometry is None:
        raise Unprocessable("feature has no geometry")
    own = props.get("microtome")
    return props, geometry, own if isinstance(own, dict) else {}


def _simple_ring(geometry: Any) -> list[Any] | None:
    """The outer ring when `geometry` is a closed hole-free Polygon (the common case)."""
    if not isinstance(geometry, dict) or geometry.get("type") != "Polygon":
        return None
    c = geometry.get("coordinates")
    if not isinstance(c, list) or len(c) != 1 or not isinstance(ring := c[0], list):
        return None
    if not 4 <= len(ring) <= MAX_VERTICES or ring[0] != ring[-1]:
        return None
    return ring


def prepare_batch(objs: Sequence[Any], frame: ImageFrame, opts: ImportOptions,
                  first_index: int) -> bulk.Batch:
    """Validate and measure decoded features; the first bad one raises naming its index."""
    n = len(objs)
    geoms = np.empty(n, dtype=object)
    kinds: list[str] = ["polygon"] * n
    shapes: list[dict[str, Any] | None] = [None] * n
    term_names: list[tuple[tuple[str, str | None], ...]] = []
    data_list: list[dict[str, Any]] = []
    producers: list[str | None] = []
    fast: list[int] = []
    rings: list[list[Any]] = []
    seen: dict[tuple[Any, ...], tuple[tuple[str, str | None], ...]] = {}

    def fail(i: int, e: MicrotomeError) -> None:
        raise _fail(first_index + i, e)

    for i, obj in enumerate(objs):
        try:
            props, geometry, own = _parts(obj)
            shape = own.get("shape") if own.get("kind") in ("rectangle", "ellipse") else None
            ring = _simple_ring(geometry) if shape is None else None
            if ring is not None:
                fast.append(i)
                rings.append(ring)
            else:
                geoms[i], kinds[i] = parse_geojson_geometry(geometry)
                if isinstance(shape, dict) and geoms[i].geom_type == "Polygon":
                    kinds[i], shapes[i] = own["kind"], shape
            data = {k: v for k, v in props.items() if k not in RESERVED}
            if data.get("objectType") == "annotation":
                del data["objectType"]  # the default; written back on export
            producer = own.get("producer") if isinstance(own.get("producer"), str) else None
            c = props.get("classification")
            if "microtome" not in props and type(c) is dict and len(c) == 2 and type(
                    name := c.get("name")) is str and type(col := c.get("color")) is list \
                    and len(col) == 3 and type(col[0]) is int and type(col[1]) is int \
                    and type(col[2]) is int:
                # QuPath's usual {"name", "color": [r, g, b]}: a handful of distinct
                # values per file, so the checked result is memoised by its inputs.
                key = (name, *col)
                names = seen.get(key)
                if names is None:
                    names = seen[key] = _classification(props)
                term_names.append(names)
            else:
                term_names.append(_classification(props))
            data_list.append(data)
            producers.append(opts.producer or producer)
        except MicrotomeError as e:
            fail(i, e)
    if rings:
        polys = simple_polygons(rings)
        if polys is not None:
            geoms[fast] = polys
        else:
            for i, ring in zip(fast, rings, strict=True):
                try:
                    geoms[i], kinds[i] = parse_geojson_geometry(
                        {"type": "Polygon", "coordinates": [ring]})
                except MicrotomeError as e:
                    fail(i, e)
    validate_many(geoms, kinds, frame, repair=opts.repair, clip=opts.clip, on_error=fail)
    return bulk.Batch(
        wkb=shapely.to_wkb(geoms).tolist(), bounds=shapely.bounds(geoms),
        n_vertices=shapely.get_num_coordinates(geoms), area=shapely.area(geoms),
        perimeter=shapely.length(geoms), kinds=kinds,
        shapes=[s if k in ("rectangle", "ellipse") else None
                for s, k in zip(shapes, kinds, strict=True)],
        term_names=term_names, data=data_list, producers=producers, lod=lod_texts(geoms))


def iter_batches(fh: BinaryIO, frame: ImageFrame, opts: ImportOptions,
                 batch: int = BATCH) -> Iterator[bulk.Batch]:
    """Parsed features in batches; the first bad one raises naming its index."""
    objs: list[Any] = []
    done = 0
    for index, obj in enumerate(iter_features(fh, opts.max_feature_bytes)):
        if index >= opts.max_features:
            raise TooLarge(f"more than {opts.max_features} features in one import")
        objs.append(obj)
        if len(objs) >= batch:
            yield prepare_batch(objs, frame, opts, done)
            done += len(objs)
            objs = []
    if objs:
        yield prepare_batch(objs, frame, opts, done)


_gc_lock = threading.Lock()
_gc_users = 0
_gc_saved: tuple[int, ...] = ()
#: Collector thresholds while imports run: young collections 10x rarer, full
#: collections (which walk the whole server heap) only after 1000 of them.
IMPORT_GC_THRESHOLDS = (20_000, 50, 1000)


@contextmanager
def gc_relaxed() -> Iterator[None]:
    """Collect garbage less often while features are parsed; never stop collecting.

    Why: decoded GeoJSON is millions of short-lived lists (one per vertex);
    they survive long enough to be promoted and trigger full collections over
    the whole server heap again and again.  Disabling the collector (what this
    did before) also stopped cycle collection for tile serving in the same
    process.  Measured parsing 100k polygons beside a 500k-object heap (CPU,
    best of 5): collector off 1.48 s, default thresholds 2.57 s, these
    thresholds 1.75 s.  Nested and concurrent imports share one setting.
    """
    global _gc_users, _gc_saved
    with _gc_lock:
        if _gc_users == 0:
            _gc_saved = gc.get_threshold()
            gc.set_threshold(*IMPORT_GC_THRESHOLDS)
        _gc_users += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_users -= 1
            if _gc_users == 0:
                gc.set_threshold(*_gc_saved)


# -- parallel parsing (large imports) ----------------------------------------------

#: Imports at least this large are parsed by worker processes (`parallel_batches`).
PARALLEL_MIN_BYTES = 24 << 20
#: Worker processes parsing an import (at most 4: the COPY is the limit beyond).
PARSE_PROCESSES = max(1, min(4, os.cpu_count() or 1))
#: Bytes of features per worker task (about 5,000 QuPath cells).
SEGMENT_BYTES = 4 << 20
#: A segment longer than this without a feature boundary: parse the file sequentially.
MAX_SEGMENT_BYTES = 16 << 20

# The usual layouts: `{"type": "FeatureCollection", "features": [` ... `]}` or `[` ... `]`.
_HEAD_FC = re.compile(
    rb'\s*\{\s*"type"\s*:\s*"FeatureCollection"\s*,\s*"features"\s*:\s*\[\s*')
_HEAD_ARRAY = re.compile(rb"\s*\[\s*")
_TAIL_FC = re.compile(rb"\s*\]\s*\}\s*\Z")
_TAIL_ARRAY = re.compile(rb"\s*\]\s*\Z")
# A candidate boundary between two features: '}' ',' before a '{'.  It may also
# occur inside a feature (objects in a list); see `parallel_batches` for why a
# wrong candidate can never be taken for a boundary.
_CUT = re.compile(rb"\}\s*,\s*(?=\{)")


class Fallback(Exception):
    """The parallel parse cannot decide (odd layout, bad input): parse sequentially."""


_pool_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None


def _worker_init() -> None:
    gc.set_threshold(*IMPORT_GC_THRESHOLDS)


def parse_pool() -> ProcessPoolExecutor:
    """The worker processes of large imports (started on first use, kept)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            # spawn: a fork of the server would copy its event loop, threads and pool.
            _pool = ProcessPoolExecutor(PARSE_PROCESSES, initializer=_worker_init,
                                        mp_context=multiprocessing.get_context("spawn"))
        return _pool


def warm_pool() -> None:
    """Start the worker processes now (an upload that may be large has begun): they
    import their modules while the body is spooled, not when parsing should start."""
    pool = parse_pool()
    for _ in range(PARSE_PROCESSES):
        pool.submit(int)


def _drop_pool() -> None:
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.shutdown(wait=False, cancel_futures=True)
        _pool = None


def parse_segment(data: bytes, frame: ImageFrame, opts: ImportOptions
                  ) -> tuple[str, bulk.Batch | None]:
    """Worker task: ("ok", batch) for a run of whole features, ("cut", None) when the
    bytes are not a comma-separated run of JSON values, ("bad", None) when one of
    them is refused (the sequential parse names it)."""
    try:
        objs = orjson.loads(b"[" + data + b"]")
    except orjson.JSONDecodeError:
        return "cut", None
    try:
        return "ok", prepare_batch(objs, frame, opts, 0)
    except MicrotomeError:
        return "bad", None


def _segments(buf: Any) -> Iterator[tuple[int, int]]:
    """(start, end) byte ranges of runs of features in a FeatureCollection held in
    `buf` (a bytes-like object); Fallback when the layout is not the usual one."""
    head = _HEAD_FC.match(buf, 0, 4096)
    tail_re = _TAIL_FC
    if head is None:
        head, tail_re = _HEAD_ARRAY.match(buf, 0, 4096), _TAIL_ARRAY
    if head is None:
        raise Fallback("layout")
    tail_from = max(head.end(), len(buf) - 4096)
    tail = tail_re.search(buf, tail_from)
    if tail is None or tail.start() <= head.end():
        raise Fallback("layout")
    pos, end = head.end(), tail.start()
    while pos < end:
        if end - pos <= SEGMENT_BYTES:
            yield pos, end
            return
        m = _CUT.search(buf, pos + SEGMENT_BYTES, min(end, pos + MAX_SEGMENT_BYTES))
        if m is None:
            raise Fallback("no boundary")
        yield pos, m.start() + 1
        pos = m.end()


def parallel_batches(buf: Any, frame: ImageFrame, opts: ImportOptions,
                     pool: ProcessPoolExecutor, depth: int
                     ) -> Generator[bulk.Batch, None, None]:
    """The batches of `iter_batches`, parsed by `pool`, in file order.

    The file is cut at candidate boundaries ('},' before '{') every few MB and
    each run is decoded as a JSON array by a worker.  Why a wrong cut is never
    taken: the first run starts at the first feature; if run k starts at a
    feature and decodes as whole values, those values are exactly the
    features the sequential parser would read (JSON is self-delimiting), so
    run k+1 starts at a feature too; a cut inside a feature leaves that
    feature's '{' unclosed and the run does not decode.  Anything unexpected
    (odd layout, a run that does not decode) raises Fallback: the caller
    starts over sequentially, which gives the usual messages.  A refused
    feature raises its usual error at once (its index is known then).  Runs
    are at most MAX_SEGMENT_BYTES <= max_feature_bytes.
    """
    if opts.max_feature_bytes < MAX_SEGMENT_BYTES:
        raise Fallback("feature limit")
    pending: deque[tuple[tuple[int, int], Future[tuple[str, bulk.Batch | None]]]] = deque()
    segments = _segments(buf)
    done = 0
    try:
        more = True
        while more or pending:
            while more and len(pending) < depth:
                seg = next(segments, None)
                if seg is None:
                    more = False
                    break
                pending.append((seg, pool.submit(parse_segment, buf[seg[0]:seg[1]], frame,
                                                 opts)))
            if not pending:
                break
            (a, b), fut = pending.popleft()
            status, batch = fut.result()
            if status == "bad":
                # A refused feature in a run that decoded: every run before it was
                # whole, so its index is known; the sequential rules raise its error
                # (unless the feature limit would have been reached first).
                objs = orjson.loads(b"[" + buf[a:b] + b"]")
                if done + len(objs) <= opts.max_features:
                    prepare_batch(objs, frame, opts, done)
            if status != "ok" or batch is None:
                raise Fallback(status)
            done += len(batch)
            if done > opts.max_features:
                raise TooLarge(f"more than {opts.max_features} features in one import")
            yield batch
    finally:
        for _seg, f in pending:
            f.cancel()


def _buffer(fh: BinaryIO) -> tuple[Any, Any]:
    """(bytes-like view of the whole file, object to close) or (None, None)."""
    if isinstance(fh, io.BytesIO):
        return fh.getvalue(), None
    try:
        fd = fh.fileno()
        size = os.fstat(fd).st_size
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None, None
    if size == 0:
        return None, None
    mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    return mm, mm


async def import_file(conn: asyncpg.Connection, fh: BinaryIO, frame: ImageFrame, *,
                      project_id: int | None, user_id: int | None, opts: ImportOptions,
                      executor: Executor | None = None, parallel: bool | None = None
                      ) -> dict[str, Any]:
    """Import every feature of an open GeoJSON file in one transaction.

    Parsing and validation run in `executor` one batch ahead of the COPY of
    the previous batch; any error rolls the whole import back.  Files of
    PARALLEL_MIN_BYTES or more (or any when `parallel` is True) are parsed by
    worker processes (`parallel_batches`) while the COPYs stream; when that
    cannot decide, the import starts over with the sequential parser.
    """
    created: list[str] = []
    total = -1
    buf, closer = _buffer(fh)
    try:
        if buf is not None and (parallel or (parallel is None
                                             and len(buf) >= PARALLEL_MIN_BYTES)):
            gen = parallel_batches(buf, frame, opts, parse_pool(), PARSE_PROCESSES + 2)
            try:
                with gc_relaxed():
                    total = await _import(conn, gen, frame, project_id, user_id, opts,
                                          executor, created, copy_rows(len(buf)))
            except Fallback:
                created.clear()
            except BrokenProcessPool:
                _drop_pool()
                created.clear()
            finally:
                gen.close()
    finally:
        del buf
        if closer is not None:
            closer.close()
    if total < 0:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(0)
        with gc_relaxed():
            total = await _import(conn, iter_batches(fh, frame, opts), frame, project_id,
                                  user_id, opts, executor, created, copy_rows(size))
    if total >= 10_000:
        # Fresh statistics and a clean density table now rather than at the next
        # autovacuum: the planner and the overview clusters need them at once.
        await conn.execute("ANALYZE annotations")
        await conn.execute("VACUUM (ANALYZE) annotation_density")
    return {"imported": total, "terms_created": created}


async def _import(conn: asyncpg.Connection, gen: Iterator[bulk.Batch], frame: ImageFrame,
                  project_id: int | None, user_id: int | None, opts: ImportOptions,
                  executor: Executor | None, created: list[str], copy_rows: int = COPY_ROWS
                  ) -> int:
    """The transaction of `import_file`; returns the number of features stored."""
    loop = asyncio.get_running_loop()
    total = 0
    async with conn.transaction():
        # The density cells of these rows are added once at the end (migration 0102).
        await conn.execute("SELECT set_config('microtome.density_by_caller', 'on', true)")
        name_map: dict[str, int] = {}
        if project_id is not None:
            name_map = await terms.resolve_names(conn, project_id, (), create=False)
        ahead = _Prefetch(loop, executor, gen, copy_rows // BATCH + 2)
        buffered: list[bulk.Batch] = []
        rows = 0
        points: list[np.ndarray] = []
        try:
            while (batch := await ahead.get()) is not None:
                await _resolve_terms(conn, batch, total, project_id, opts, name_map, created)
                buffered.append(batch)
                points.append(bulk.centres(frame, batch.bounds))
                rows += len(batch)
                total += len(batch)
                # COPYs of up to 50k rows in Z-order: spatial neighbours share heap
                # pages (what viewport queries read).  Parsing goes on meanwhile.
                if rows >= copy_rows:
                    await _copy(conn, frame, bulk.concat(buffered), project_id, user_id,
                                dict(name_map), executor)
                    buffered, rows = [], 0
            if buffered:
                await _copy(conn, frame, bulk.concat(buffered), project_id, user_id,
                            dict(name_map), executor)
            if points:
                cells = await loop.run_in_executor(executor, bulk.density_rows,
                                                   np.concatenate(points))
                await store.add_density(conn, frame.image_id, cells)
        finally:
            await ahead.close()
    return total


class _Prefetch:
    """Batches parsed in the executor ahead of their COPY, up to `depth` of them.

    Why a task rather than one `next()` ahead: a COPY of 50k rows keeps the
    server busy for about a second, during which the parser would otherwise
    finish one batch and wait; now Python parses while PostgreSQL writes.
    A parse error is queued in order and raised by `get`.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, executor: Executor | None,
                 gen: Iterator[bulk.Batch], depth: int) -> None:
        self.queue: asyncio.Queue[bulk.Batch | BaseException | None] = asyncio.Queue(depth)
        self.stop = False
        self.task = loop.create_task(self._run(loop, executor, gen))

    async def _run(self, loop: asyncio.AbstractEventLoop, executor: Executor | None,
                   gen: Iterator[bulk.Batch]) -> None:
        while not self.stop:
            try:
                batch = await loop.run_in_executor(executor, next, gen, None)
            except Exception as e:  # bad input: raised by get() at its place
                await self.queue.put(e)
                return
            if self.stop:
                return
            await self.queue.put(batch)
            if batch is None:
                return

    async def get(self) -> bulk.Batch | None:
        item = await self.queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    async def close(self) -> None:
        """Stop parsing; returns once no thread is inside the generator any more
        (the caller closes the file next)."""
        self.stop = True
        while not self.task.done():
            while not self.queue.empty():  # unblock a put() on a full queue
                self.queue.get_nowait()
            await asyncio.wait([self.task], timeout=0.05)


async def _resolve_terms(conn: asyncpg.Connection, batch: bulk.Batch, first_index: int,
                         project_id: int | None, opts: ImportOptions,
                         name_map: dict[str, int], created: list[str]) -> None:
    """Add the batch's term names to `name_map`, creating missing terms if allowed."""
    # dict.fromkeys: distinct name sets in file order (terms are created in that order).
    missing = {n.strip().lower(): (n, c) for names in dict.fromkeys(batch.term_names)
               for n, c in names if n.strip().lower() not in name_map}
    if not missing:
        return
    if project_id is None or not opts.create_terms:
        key = next(iter(missing))
        idx = first_index + next(i for i, names in enumerate(batch.term_names)
                                 if any(n.strip().lower() == key for n, _ in names))
        raise Unprocessable(f"feature {idx}: unknown term {missing[key][0]!r}",
                            {"feature_index": idx, "unknown_term": missing[key][0]})
    name_map.update(await terms.resolve_names(conn, project_id, missing.values(), create=True))
    created += [n for n, _ in missing.values()]


def _encode(frame: ImageFrame, batch: bulk.Batch, ids: list[int], name_map: dict[str, int],
            project_id: int | None, user_id: int | None) -> bytes:
    """The COPY payload of a batch (CPU: runs in the executor)."""
    arrays: dict[tuple[int, ...], bytes] = {}
    by_names: dict[tuple[tuple[str, str | None], ...], bytes] = {}
    term_ids = []
    for names in batch.term_names:
        enc = by_names.get(names)
        if enc is None:
            ids_ = tuple(sorted({name_map[n.strip().lower()] for n, _ in names}))
            enc = by_names[names] = bulk.term_array(ids_, arrays)
        term_ids.append(enc)
    return bulk.encode(frame, batch, ids, term_ids, project_id=project_id, user_id=user_id)


async def _copy(conn: asyncpg.Connection, frame: ImageFrame, batch: bulk.Batch,
                project_id: int | None, user_id: int | None, name_map: dict[str, int],
                executor: Executor | None) -> None:
    # Ids follow the file order (an export lists them in that order).
    ids = [r[0] for r in await conn.fetch(
        "SELECT nextval(pg_get_serial_sequence('annotations', 'id')) "
        "FROM generate_series(1, $1)", len(batch))]
    payload = await asyncio.get_running_loop().run_in_executor(
        executor, _encode, frame, batch, ids, name_map, project_id, user_id)
    await conn.copy_to_table("annotations", source=_chunks(payload), columns=bulk.COLUMNS,
                             format="binary")


async def _chunks(payload: bytes, size: int = 1 << 20) -> AsyncIterator[memoryview]:
    """The payload in pieces (bytes would be taken for a file name by asyncpg)."""
    view = memoryview(payload)
    for i in range(0, len(view), size):
        yield view[i:i + size]


# -- export ------------------------------------------------------------------------

def export_features(rows: Sequence[Any], term_info: dict[int, tuple[str, str]]) -> bytes:
    """Comma-joined Feature texts for rows of `store.COLS` (CPU: call in an executor)."""
    geoms = geometries_json([r["geom"] for r in rows])
    out = []
    for r, g in zip(rows, geoms, strict=True):
        props = dict(r["properties"] or {})
        props.setdefault("objectType", "annotation")
        tids = [t for t in r["term_ids"] if t in term_info]
        if tids:
            name, color = term_info[tids[0]]
            props["classification"] = {"name": name, "color": terms.rgb(color)}
        own: dict[str, Any] = {"id": r["id"], "kind": r["kind"],
                               "terms": [term_info[t][0] for t in tids]}
        if r["shape"] is not None:
            own["shape"] = r["shape"]
        if r["producer"] is not None:
            own["producer"] = r["producer"]
        if r["user_id"] is not None:
            own["user_id"] = r["user_id"]
        props["microtome"] = own
        out.append(orjson.dumps({"type": "Feature", "geometry": orjson.Fragment(g),
                                 "properties": props}))
    return b",\n".join(out)


async def export_chunks(conn: asyncpg.Connection | asyncpg.Pool, image_id: int,
                        project_id: int | None, term_info: dict[int, tuple[str, str]],
                        executor: Executor | None = None, batch: int = BATCH,
                        analysis_id: int | None = None) -> AsyncIterator[bytes]:
    """The FeatureCollection in pieces, walking the image's annotations by id
    (only one analysis' results when `analysis_id` is given)."""
    loop = asyncio.get_running_loop()
    yield b'{"type": "FeatureCollection", "features": [\n'
    after = 0
    first = True
    cond = "a.image_id = $1 AND a.id > $2"
    args: list[Any] = [image_id]
    extra: list[Any] = []
    if project_id is not None:
        extra.append(project_id)
        cond += f" AND a.project_id = ${3 + len(extra)}"
    if analysis_id is not None:
        extra.append(analysis_id)
        cond += f" AND a.analysis_id = ${3 + len(extra)}"
    while True:
        rows = await conn.fetch(
            f"SELECT {store.COLS} FROM annotations a WHERE {cond} ORDER BY a.id LIMIT $3",
            *args, after, batch, *extra)
        if not rows:
            break
        body = await loop.run_in_executor(executor, export_features, rows, term_info)
        yield (b"" if first else b",\n") + body
        first = False
        after = rows[-1]["id"]
    yield b"\n]}\n"
