"""`convert`: any supported source -> one OME-Zarr image directory, atomically.

Steps: open + check the source, plan the layout, build every plane's pyramid
into ``<dst>.partial``, write associated images, original metadata and the
NGFF documents, read back a sample of chunks of every level, fsync, rename.
Any failure (or Ctrl-C) removes the partial directory.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from microtome.pyramid import histogram
from microtome.pyramid.errors import Conflict, DiskFull, MicrotomeError, SourceError, StorageError
from microtome.pyramid.layout import Channel, ImageMeta, Level, level_sizes
from microtome.pyramid.optional import missing_extra_message
from microtome.pyramid.reader import open_pyramid

from .base import SourceInfo, SourceReader
from .build import Builder, PlaneJob, RemoteFetcher, Tally
from .sinks import fsync_tree, make_sink
from .sources import open_source
from .verify import verify_output

#: Per-level shard buffer budget for multi-channel sources (bytes).
CHANNEL_GROUP_BUDGET = 64 << 20
#: Shard side in pixels: a 65k x 49k slide is a few hundred files.
DEFAULT_SHARD = 4096


@dataclass
class ConvertOptions:
    tile_size: int = 256
    codec: Literal["auto", "jpeg", "zstd"] = "auto"
    quality: int = 90
    ngff: Literal["0.5", "0.4"] = "0.5"
    workers: int | None = None
    scheduler: str | None = None
    overwrite: bool = False
    #: Shard side in pixels (a multiple of tile_size); None = 4096.
    shard_size: int | None = None
    #: Copy the source's JPEG tiles into level 0 when they match the chunk grid
    #: (no decode/encode loss; ``quality`` then applies to levels >= 1 only).
    copy_jpeg: bool = True
    #: imzML: m/z values made into channels (empty: the ``top_peaks`` most
    #: intense peaks), their half-width (None: from the data).
    #: CZI (and other multi-scene sources): the scene to convert (None: first).
    scene: int | None = None
    mz: tuple[float, ...] = ()
    mz_tol: float | None = None
    top_peaks: int = 8

    def validate(self) -> None:
        t = self.tile_size
        if t < 16 or t > 4096 or t & (t - 1):
            raise ValueError("tile size must be a power of two between 16 and 4096")
        if self.codec not in ("auto", "jpeg", "zstd"):
            raise ValueError("codec must be auto, jpeg or zstd")
        if not 1 <= self.quality <= 100:
            raise ValueError("quality must be between 1 and 100")
        if self.ngff not in ("0.5", "0.4"):
            raise ValueError("ngff must be 0.5 or 0.4")
        if self.workers is not None and self.workers < 1:
            raise ValueError("workers must be at least 1")
        s = self.shard_size
        if s is not None and (s < t or s % t or s & (s - 1)):
            raise ValueError("shard size must be a power-of-two multiple of the tile size")


@dataclass
class Progress:
    fraction: float
    stage: str
    bytes_written: int
    chunks_done: int = 0
    chunks_total: int = 0
    seconds: float = 0.0


@dataclass
class ConvertResult:
    path: Path
    format: str
    width: int
    height: int
    levels: int
    pixel_size_um: tuple[float, float] | None
    channels: list[str]
    size_t: int
    size_c: int
    size_z: int
    bytes_written: int
    seconds: float
    version: str
    codec: str = ""
    kind: str = ""
    tile_size: int = 0
    ngff: str = "0.5"
    #: Level-0 chunks copied from the source's own JPEG tiles.
    copied_chunks: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["path"] = str(self.path)
        d["pixel_size_um"] = list(self.pixel_size_um) if self.pixel_size_um else None
        return d


# -- planning ---------------------------------------------------------------
_DEFAULT_COLORS = ["0000FF", "00FF00", "FF0000", "FFFF00", "FF00FF", "00FFFF", "FFFFFF"]


def choose_kind(info: SourceInfo, options: ConvertOptions) -> tuple[str, str]:
    """(kind, codec): JPEG chunks for 8-bit RGB brightfield, zstd for the rest."""
    if not info.rgb or options.codec == "zstd" or options.ngff == "0.4":
        return "nd", "zstd"
    if options.codec == "jpeg":
        return "rgb", "jpeg"
    # auto: JPEG when the source is lossy already or a whole-slide image;
    # lossless pictures (PNG, GIF, deflate TIFF...) stay lossless.
    if info.lossy or info.whole_slide:
        return "rgb", "jpeg"
    return "nd", "zstd"


def plan_meta(info: SourceInfo, options: ConvertOptions, name: str,
              source: dict[str, Any]) -> ImageMeta:
    kind, codec = choose_kind(info, options)
    if kind == "nd" and info.rgb and options.ngff == "0.4" and options.codec != "zstd":
        kind = "rgb"  # v2 RGB keeps (c, y, x) axes, stored losslessly (see sinks)
    tile = options.tile_size
    shard = options.shard_size or max(tile, DEFAULT_SHARD)
    sizes = level_sizes(info.width, info.height, tile)
    levels = tuple(Level(str(i), w, h, 2 ** i) for i, (w, h) in enumerate(sizes))
    size_c = 3 if kind == "rgb" else info.size_c
    return ImageMeta(
        width=info.width, height=info.height, levels=levels, kind=kind,  # type: ignore[arg-type]
        dtype=str(np.dtype(info.dtype)), tile_size=tile, shard_size=shard, codec=codec,
        size_t=info.size_t, size_c=size_c, size_z=info.size_z,
        pixel_size_um=info.pixel_size_um, z_spacing_um=info.z_spacing_um,
        version=secrets.token_hex(6), name=name, source=source, ngff=options.ngff,
        channels=_rgb_channels() if info.rgb else (),
    )


def _rgb_channels() -> tuple[Channel, ...]:
    return tuple(Channel(n, c, 0, 255, 0, 255) for n, c in
                 (("Red", "FF0000"), ("Green", "00FF00"), ("Blue", "0000FF")))


def plane_jobs(meta: ImageMeta, info: SourceInfo) -> list[PlaneJob]:
    """Split the work into independent 2D pyramids with bounded buffers."""
    if meta.kind == "rgb" or info.rgb:
        group = (0, 1, 2)
        return [PlaneJob(t, z, group) for t in range(meta.size_t) for z in range(meta.size_z)]
    per_channel = meta.shard_size ** 2 * np.dtype(meta.dtype).itemsize
    n = max(1, min(meta.size_c, CHANNEL_GROUP_BUDGET // per_channel))
    groups = [tuple(range(i, min(i + n, meta.size_c))) for i in range(0, meta.size_c, n)]
    return [PlaneJob(t, z, g) for t in range(meta.size_t) for z in range(meta.size_z)
            for g in groups]


def channel_meta(meta: ImageMeta, info: SourceInfo, tally: Tally) -> tuple[Channel, ...]:
    if meta.kind == "rgb" or info.rgb:
        return _rgb_channels()
    dt = np.dtype(meta.dtype)
    out = []
    for i in range(meta.size_c):
        src = info.channels[i] if i < len(info.channels) else None
        ranges = tally.ranges.get(i, [])
        lo = min((r[0] for r in ranges), default=0.0)
        hi = max((r[1] for r in ranges), default=1.0)
        if src is not None and src.window:
            lo, hi = src.window
        elif dt == np.uint8:
            # 8-bit grey is shown as stored (a photo or a scan, not a
            # measurement): stretching is for 16-bit and float data.
            lo, hi = 0.0, 255.0
        if dt.kind in "ui":
            info_ = np.iinfo(dt)
            wmin, wmax = float(info_.min), float(info_.max)
        else:
            wmin, wmax = min(lo, 0.0), max(hi, 1.0)
        if hi <= lo:
            hi = lo + 1
        color = (src.color if src and src.color else
                 "FFFFFF" if meta.size_c == 1 else _DEFAULT_COLORS[i % len(_DEFAULT_COLORS)])
        if info.rgb:
            color = ("FF0000", "00FF00", "0000FF")[i]
        out.append(Channel(src.name if src else f"C{i}", color, float(lo), float(hi),
                           min(wmin, float(lo)), max(wmax, float(hi)),
                           inverted=bool(src and src.inverted)))
    return tuple(out)


# -- the conversion ---------------------------------------------------------
def _partial_path(dst: Path) -> Path:
    return dst.with_name(dst.name + ".partial")


def _src_name(src: Path | Sequence[Path]) -> str:
    if isinstance(src, str | os.PathLike):
        return Path(src).name
    paths = list(src)
    return paths[0].name if len(paths) == 1 else paths[0].parent.name or paths[0].name


def _stem(name: str) -> str:
    for ext in (".ome.tiff", ".ome.tif", ".ome.zarr"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name.rsplit(".", 1)[0] if "." in name else name


def convert(src: Path | Sequence[Path], dst: Path, options: ConvertOptions | None = None,
            progress: Callable[[Progress], None] | None = None) -> ConvertResult:
    """Convert ``src`` to the OME-Zarr directory ``dst`` (see module doc).

    Raises SourceError/UnsupportedFormat for bad input, Conflict if ``dst``
    exists without ``overwrite``, StorageError if the output cannot be written
    (disk full, permissions), ValueError for bad options.
    """
    options = options or ConvertOptions()
    options.validate()
    dst = Path(dst)
    partial = _partial_path(dst)
    if dst.exists() and not options.overwrite:
        raise Conflict("output already exists (use --overwrite)")
    started = time.monotonic()

    def report(stage: str, fraction: float, tally: Tally | None = None, total: int = 0) -> None:
        if progress is not None:
            progress(Progress(fraction=min(1.0, max(0.0, fraction)), stage=stage,
                              bytes_written=tally.bytes if tally else 0,
                              chunks_done=tally.chunks if tally else 0, chunks_total=total,
                              seconds=time.monotonic() - started))

    report("opening", 0.0)
    reader = open_source(src)
    try:
        with _exclusive(dst):
            try:
                if partial.exists():
                    shutil.rmtree(partial)
                return _convert_open(reader, src, dst, partial, options, report, started)
            except BaseException as e:
                shutil.rmtree(partial, ignore_errors=True)
                raise _map_error(e) from e
    finally:
        reader.close()


@contextmanager
def _exclusive(dst: Path) -> Iterator[None]:
    """One conversion per output at a time: a second one would delete the first's
    partial directory under it (both then failed verification).  The lock file
    goes away with the conversion; a crashed holder's lock is released by the OS."""
    lock = dst.with_name(dst.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Conflict("another conversion is writing this output right now") from None
        try:
            if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # the previous holder removed it while we opened it: retry
    try:
        yield
    finally:
        try:
            os.unlink(lock)
        finally:
            os.close(fd)


def _map_error(e: BaseException) -> BaseException:
    if isinstance(e, MicrotomeError | KeyboardInterrupt | SystemExit | ValueError):
        return e
    if isinstance(e, MemoryError):
        return SourceError("out of memory while converting")
    if isinstance(e, OSError):
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            return DiskFull("cannot write output: no space left on device")
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return StorageError(f"cannot write output: {e.strerror}")
        return StorageError(f"I/O error: {e.strerror or e}")
    msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
    return SourceError(f"conversion failed: {type(e).__name__}{': ' + msg if msg else ''}")


def _choices(options: ConvertOptions) -> dict[str, Any]:
    """What `SourceReader.configure` gets (the same on every dask worker)."""
    return {"mz": options.mz, "tol": options.mz_tol, "top_peaks": options.top_peaks,
            "scene": options.scene}


def _convert_open(reader: SourceReader, src: Path | Sequence[Path], dst: Path, partial: Path,
                  options: ConvertOptions, report: Callable[..., None],
                  started: float) -> ConvertResult:
    reader.configure(**_choices(options))
    info = reader.info
    source: dict[str, Any] = {"format": info.format, "filename": _src_name(src),
                              "vendor": info.vendor}
    if info.objective_power:
        source["objective_power"] = info.objective_power
    for key in ("acquired", "scanner"):
        if getattr(info, key):
            source[key] = getattr(info, key)
    if info.format == "imzml":
        # Clients (the viewer) learn from /metadata that the spectrum and
        # ion-image routes answer for this image.
        source["spectra"] = {"routes": ["spectrum", "ion-image"]}
    wavelengths = [{"excitation_nm": c.excitation_nm, "emission_nm": c.emission_nm}
                   for c in info.channels]
    if any(w["excitation_nm"] or w["emission_nm"] for w in wavelengths):
        source["channel_wavelengths"] = wavelengths
    meta = plan_meta(info, options, _stem(dst.name), source)
    if options.codec == "jpeg" and meta.codec != "jpeg":
        info.notes.append("JPEG needs 8-bit RGB (and NGFF 0.5): stored losslessly with zstd")
    jobs = plane_jobs(meta, info)
    per_plane = sum(-(-lv.width // meta.tile_size) * -(-lv.height // meta.tile_size)
                    for lv in meta.levels)
    total = per_plane * (len(jobs) if meta.kind == "rgb" else meta.size_t * meta.size_z
                         * meta.size_c)
    partial.mkdir(parents=True)
    sink = make_sink(partial, meta, options.quality)

    last_report = [0.0]

    def on_progress(tally: Tally) -> None:
        now = time.monotonic()
        if now - last_report[0] >= 0.2 or tally.chunks >= total:
            last_report[0] = now
            report("pyramid", min(0.95, 0.95 * tally.chunks / max(1, total)), tally, total)

    workers = options.workers or os.cpu_count() or 2
    with ThreadPoolExecutor(workers, thread_name_prefix="convert") as pool:
        tally = _build(reader, meta, sink, options, pool, jobs, on_progress, src, partial,
                       workers)
    report("associated", 0.95, tally, total)
    associated = _write_associated(reader, sink)
    reader.write_beside(partial)
    meta = _replace(meta, associated=tuple(associated),
                    channels=channel_meta(meta, info, tally))
    sink.write_metadata(meta)
    original = {"source": info.as_dict(), "metadata": reader.original_metadata()}
    sink.write_file("metadata/original.json",
                    json.dumps(original, indent=1, allow_nan=False, default=str).encode())
    report("verifying", 0.97, tally, total)
    verify_output(partial, meta, tally.crcs)
    # Per-channel histograms for auto-contrast and /images/{id}/histogram, from the
    # verified pyramid's overview level (pyramid/histogram.py).
    sink.write_file(histogram.RELPATH, histogram.encode(histogram.compute(open_pyramid(partial))))
    report("syncing", 0.99, tally, total)
    fsync_tree(partial)
    _publish(partial, dst, options.overwrite)
    seconds = time.monotonic() - started
    report("done", 1.0, tally, total)
    return ConvertResult(
        path=dst, format=info.format, width=meta.width, height=meta.height,
        levels=len(meta.levels), pixel_size_um=meta.pixel_size_um,
        channels=[c.label for c in meta.channels], size_t=meta.size_t, size_c=meta.size_c,
        size_z=meta.size_z, bytes_written=tally.bytes, seconds=seconds, version=meta.version,
        codec=meta.codec, kind=meta.kind, tile_size=meta.tile_size, ngff=meta.ngff,
        copied_chunks=tally.copied, notes=list(info.notes),
    )


def _build(reader: SourceReader, meta: ImageMeta, sink: Any, options: ConvertOptions,
           pool: ThreadPoolExecutor, jobs: list[PlaneJob], on_progress: Callable[[Tally], None],
           src: Path | Sequence[Path], partial: Path, workers: int) -> Tally:
    if not options.scheduler:
        builder = Builder(reader, meta, sink, options.quality, pool, on_progress,
                          copy_jpeg=options.copy_jpeg)
        try:
            for job in jobs:
                builder.build(job)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        return builder.tally
    return _build_distributed(reader, meta, sink, options, pool, jobs, on_progress, src,
                              partial, workers)


def _build_distributed(reader: SourceReader, meta: ImageMeta, sink: Any,
                       options: ConvertOptions, pool: ThreadPoolExecutor,
                       jobs: list[PlaneJob], on_progress: Callable[[Tally], None],
                       src: Path | Sequence[Path], partial: Path, workers: int) -> Tally:
    """Subtrees of a middle level run on the cluster; the client builds the top.

    Workers must see ``partial`` at the same path (shared filesystem).
    """
    try:
        from distributed import Client
    except ImportError as e:
        raise ValueError(missing_extra_message("cluster")) from e
    try:
        client = Client(options.scheduler, timeout="5s")
    except Exception as e:
        raise ValueError(f"cannot connect to scheduler {options.scheduler}: {e}") from e
    try:
        nworkers = max(1, len(client.scheduler_info().get("workers", {})))
        spec = {"src": _portable_src(src), "meta": meta, "root": partial.resolve(),
                "quality": options.quality, "threads": options.workers or 2,
                "copy_jpeg": options.copy_jpeg, "choices": _choices(options)}
        builder = Builder(reader, meta, sink, options.quality, pool, on_progress,
                          copy_jpeg=options.copy_jpeg)
        level = _remote_level(builder, nworkers)
        fetcher = RemoteFetcher(client, spec, level, window=2 * nworkers)
        builder.remote = fetcher
        fetcher.start(builder, jobs)
        try:
            for job in jobs:
                builder.build(job)
        finally:
            fetcher.cancel()
        return builder.tally
    finally:
        client.close()


def _portable_src(src: Path | Sequence[Path]) -> Any:
    if isinstance(src, str | os.PathLike):
        return Path(src).resolve()
    return [Path(p).resolve() for p in src]


def _remote_level(builder: Builder, nworkers: int) -> int:
    """The highest level below the top that still gives every worker a few subtrees."""
    best = 0
    for lv in range(builder.last):
        ny, nx = builder.grid(lv)
        if ny * nx >= 4 * nworkers:
            best = lv
    return best


def _write_associated(reader: SourceReader, sink: Any) -> list[str]:
    import imagecodecs

    names = []
    for name in reader.info.associated:
        try:
            img = reader.associated_image(name)
        except (KeyError, SourceError):
            continue
        except Exception:  # a damaged label must not sink the slide
            continue
        sink.write_file(f"associated/{name}.png", imagecodecs.png_encode(
            np.ascontiguousarray(img)))
        names.append(name)
    return names


def _replace(meta: ImageMeta, **kw: Any) -> ImageMeta:
    import dataclasses
    return dataclasses.replace(meta, **kw)


def _publish(partial: Path, dst: Path, overwrite: bool) -> None:
    """Atomically make the finished image visible at ``dst``."""
    old = None
    if dst.exists():
        if not overwrite:
            raise Conflict("output already exists (use --overwrite)")
        old = dst.with_name(f"{dst.name}.old-{secrets.token_hex(4)}")
        os.rename(dst, old)
    try:
        os.rename(partial, dst)
    except BaseException:
        if old is not None:
            os.rename(old, dst)
        raise
    fd = os.open(dst.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
