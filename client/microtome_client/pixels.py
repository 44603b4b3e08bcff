"""Pixels into numpy: regions (tiled, parallel, stitched), thumbnails, tiles, originals.

Coordinates are level-0 pixels, origin top-left (as IIIF and annotations).
RGB slides are read through IIIF in tiles aligned to the stored chunks, so the
server sends the stored JPEG chunks as they are (no decode or encode there);
other images (fluorescence, 16-bit, many channels) through
``/images/{id}/region.npy``, which answers the stored values in their dtype,
in blocks of 2048 pixels aligned to the stored chunks (``format="npy"`` asks
for that on RGB slides too: the decoded chunks, pixel for pixel).  Blocks are
fetched at most ``parallel`` at a time into one preallocated array: memory is
the answer plus a few blocks, whatever the region's size.
"""

from __future__ import annotations

import asyncio
import io
import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .models import ImageMetadata

if TYPE_CHECKING:
    from .image import Image

#: Formats rendered by IIIF (8-bit colour) and raw formats (stored dtype).
RENDERED = ("jpg", "png", "webp")
RAW = ("npy",)
#: Side of a raw tile request, in level pixels (a multiple of the stored tile size).
RAW_BLOCK = 2048
PARALLEL = 8
#: Objective powers to look for in the scanner's metadata, most specific first.
_MAG_KEYS = ("openslide.objective-power", "aperio.AppMag", "AppMag", "objective_power",
             "hamamatsu.SourceLens", "NominalMagnification")


@dataclass(frozen=True)
class Window:
    """A rectangle on one stored level, in that level's pixels."""

    level: int
    x: int
    y: int
    w: int
    h: int


def choose_level(meta: ImageMetadata, level: int | None, scale: float | None) -> int:
    """The stored level to read: the given one, or the smallest level at least as
    detailed as ``scale`` (output pixels per level-0 pixel)."""
    if level is not None:
        if not 0 <= level < len(meta.levels):
            raise ValueError(f"level must be in 0..{len(meta.levels) - 1}")
        return level
    if scale is None:
        return 0
    if not 0 < scale <= 1:
        raise ValueError("scale must be in (0, 1]: output pixels per full-resolution pixel")
    best = 0
    for i, lv in enumerate(meta.levels):
        if lv.downsample <= (1 / scale) * (1 + 1e-9):
            best = i
    return best


def level_window(meta: ImageMetadata, level: int, x: int, y: int, w: int, h: int) -> Window:
    """The rectangle of ``level`` covering the level-0 region (as the server computes it)."""
    lv = meta.levels[level]
    d = lv.downsample
    lx, ly = x // d, y // d
    lx1, ly1 = min(lv.width, math.ceil((x + w) / d)), min(lv.height, math.ceil((y + h) / d))
    return Window(level, lx, ly, max(1, lx1 - lx), max(1, ly1 - ly))


def blocks(meta: ImageMetadata, win: Window, block: int) -> list[Window]:
    """Grid-aligned blocks of side ``block`` (level pixels) that cover ``win``, clipped
    to the level: aligned requests are stored chunks the server sends as they are."""
    lv = meta.levels[win.level]
    out = []
    for by in range(win.y // block, (win.y + win.h - 1) // block + 1):
        for bx in range(win.x // block, (win.x + win.w - 1) // block + 1):
            x0, y0 = bx * block, by * block
            out.append(Window(win.level, x0, y0, min(block, lv.width - x0),
                              min(block, lv.height - y0)))
    return out


def magnification_scale(meta: ImageMetadata, magnification: float) -> float:
    """``scale`` for an objective magnification: from the scanner's objective power when
    the metadata has it, else from the pixel size (10x ≈ 1 µm per pixel)."""
    base = _objective_power(meta.original)
    if base is None and meta.mpp:
        base = 10.0 / meta.mpp
    if base is None:
        raise ValueError("the image has neither an objective power nor a pixel size")
    return min(1.0, magnification / base)


def _objective_power(original: Any) -> float | None:
    stack = [original]
    found: dict[str, Any] = {}
    while stack:  # the vendor document nests differently per format
        node = stack.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                if k in _MAG_KEYS and k not in found:
                    found[k] = v
                elif isinstance(v, (dict, list)):
                    stack.append(v)
        elif isinstance(node, list):
            stack.extend(node)
    for key in _MAG_KEYS:
        try:
            value = float(str(found[key]).lower().rstrip("x"))
        except (KeyError, ValueError):
            continue
        if value > 0:
            return value
    return None


def _decode(data: bytes, fmt: str) -> np.ndarray:
    if fmt == "npy":
        return decode_npy(data)
    from PIL import Image as PILImage

    with PILImage.open(io.BytesIO(data)) as im:
        return np.asarray(im if im.mode == "RGB" else im.convert("RGB"))


def decode_npy(data: bytes) -> np.ndarray:
    """A read-only view of an ``.npy`` body (no copy: the caller copies it into place)."""
    buf = io.BytesIO(data)
    version = np.lib.format.read_magic(buf)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(buf)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(buf)
    if dtype.hasobject:
        raise ValueError("object arrays are not pixels")
    arr = np.frombuffer(data, dtype=dtype, count=int(np.prod(shape)), offset=buf.tell())
    return arr.reshape(shape, order="F" if fortran else "C")


def resize(arr: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    """Area-average resampling of (h, w, c) pixels of any dtype (Pillow, per channel)."""
    from PIL import Image as PILImage

    if arr.shape[1] == out_w and arr.shape[0] == out_h:
        return arr
    box = PILImage.Resampling.BOX
    if arr.dtype == np.uint8 and arr.shape[2] == 3:
        return np.asarray(PILImage.fromarray(arr).resize((out_w, out_h), box))
    planes = []
    for c in range(arr.shape[2]):
        plane = PILImage.fromarray(np.ascontiguousarray(arr[..., c], dtype=np.float32), "F")
        planes.append(np.asarray(plane.resize((out_w, out_h), box)))
    out = np.stack(planes, axis=-1)
    if arr.dtype.kind in "iu":
        info = np.iinfo(arr.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(arr.dtype)


class _Reader:
    """Fetches one block of one image as an array (IIIF or raw)."""

    def __init__(self, image: Image, meta: ImageMetadata, fmt: str,
                 channels: Sequence[int] | None, z: int | None, t: int | None) -> None:
        self.image, self.meta, self.fmt = image, meta, fmt
        self.extra: dict[str, Any] = {}
        if channels is not None:
            self.extra["channels"] = ",".join(str(int(c)) for c in channels)
        if z is not None:
            self.extra["z"] = int(z)
        if t is not None:
            self.extra["t"] = int(t)
        if image.version:
            self.extra["v"] = image.version  # immutable answers: caches may keep them

    @property
    def block(self) -> int:
        ts = self.meta.tile_size
        return ts if self.fmt in RENDERED else max(ts, RAW_BLOCK // ts * ts)

    def level0(self, b: Window) -> tuple[int, int, int, int]:
        d = self.meta.levels[b.level].downsample
        x0, y0 = b.x * d, b.y * d
        return x0, y0, min(b.w * d, self.meta.width - x0), min(b.h * d, self.meta.height - y0)

    async def fetch(self, b: Window) -> np.ndarray:
        x, y, w, h = self.level0(b)
        t = self.image.client.t
        if self.fmt in RAW:
            params = {"x": x, "y": y, "w": w, "h": h, "level": b.level, **self.extra}
            resp = await t.request("GET", f"/images/{self.image.id}/region.npy", params=params)
        else:
            url = f"/iiif/3/{self.image.id}/{x},{y},{w},{h}/{b.w},{b.h}/0/default.{self.fmt}"
            resp = await t.request("GET", url, params=self.extra)
        arr = await asyncio.to_thread(_decode, resp.content, self.fmt)
        return arr[: b.h, : b.w]


def _format(meta: ImageMetadata, fmt: str) -> str:
    # RGB slides: IIIF tiles that are stored JPEG chunks, sent as they are (~10x fewer
    # bytes than raw, and measured faster than raw blocks even on loopback: the server
    # does no decoding).  Everything else: raw blocks in the stored dtype.
    if fmt == "auto":
        return "jpg" if meta.kind == "rgb" else "npy"
    if fmt == "raw":
        return "npy"
    if fmt not in RENDERED + RAW:
        raise ValueError(f"format must be auto, raw, npy or one of {RENDERED}")
    return fmt


async def read_region(image: Image, x: int, y: int, w: int, h: int, *, level: int | None,
                      scale: float | None, channels: Sequence[int] | None, z: int | None,
                      t: int | None, fmt: str, max_pixels: int,
                      magnification: float | None = None, parallel: int = PARALLEL
                      ) -> np.ndarray:
    """(h', w', channels) array of the region; see `Image.region`."""
    meta = await image.fetch_metadata()
    if magnification is not None:
        scale = magnification_scale(meta, magnification)
    fmt = _format(meta, fmt)
    if x < 0 or y < 0 or w < 1 or h < 1 or x + w > meta.width or y + h > meta.height:
        return await _outside(image, x, y, w, h, level or 0)
    lvl = choose_level(meta, level, scale)
    win = level_window(meta, lvl, x, y, w, h)
    reader = _Reader(image, meta, fmt, channels, z, t)
    nc = 3 if meta.kind == "rgb" or fmt in RENDERED else (
        len(channels) if channels is not None else meta.size_c)
    if win.w * win.h > max_pixels:
        raise ValueError(f"region of {win.w}x{win.h} pixels exceeds max_pixels={max_pixels}")
    dtype = np.uint8 if fmt in RENDERED else np.dtype(meta.dtype)
    out = np.zeros((win.h, win.w, nc), dtype=dtype)
    sem = asyncio.Semaphore(parallel)

    async def one(b: Window) -> None:
        async with sem:
            arr = await reader.fetch(b)
        x0, y0 = max(b.x, win.x), max(b.y, win.y)
        x1, y1 = min(b.x + b.w, win.x + win.w), min(b.y + b.h, win.y + win.h)
        out[y0 - win.y:y1 - win.y, x0 - win.x:x1 - win.x] = \
            arr[y0 - b.y:y1 - b.y, x0 - b.x:x1 - b.x]

    await _gather([one(b) for b in blocks(meta, win, reader.block)])
    if scale is not None:
        ow, oh = max(1, round(w * scale)), max(1, round(h * scale))
        if (ow, oh) != (win.w, win.h):
            return await asyncio.to_thread(resize, out, ow, oh)
    return out


async def _gather(coros: list[Any]) -> None:
    """Run all; on the first failure cancel the rest and raise it."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _outside(image: Image, x: int, y: int, w: int, h: int, level: int) -> np.ndarray:
    """The server decides about regions not inside the image: its 400 becomes the error."""
    params = {"x": x, "y": y, "w": w, "h": h, "level": level}
    resp = await image.client.t.request("GET", f"/images/{image.id}/region.npy", params=params)
    return decode_npy(resp.content).copy()


async def thumbnail(image: Image, size: int) -> np.ndarray:
    resp = await image.client.t.request("GET", f"/images/{image.id}/thumbnail.png",
                                        params={"size": int(size)})
    return await asyncio.to_thread(_decode, resp.content, "png")


async def iter_tiles(image: Image, level: int, *, channels: Sequence[int] | None,
                     z: int | None, t: int | None, fmt: str
                     ) -> AsyncIterator[tuple[tuple[int, int, int, int], np.ndarray]]:
    """((x, y, w, h) on the level, pixels) for every stored tile of a level, in row
    order; a few tiles are fetched ahead, never the whole level."""
    meta = await image.fetch_metadata()
    if not 0 <= level < len(meta.levels):
        raise ValueError(f"level must be in 0..{len(meta.levels) - 1}")
    lv = meta.levels[level]
    reader = _Reader(image, meta, _format(meta, fmt), channels, z, t)
    ts = meta.tile_size
    todo = blocks(meta, Window(level, 0, 0, lv.width, lv.height), ts)
    pending: list[tuple[Window, asyncio.Task[np.ndarray]]] = []
    try:
        for b in todo:
            pending.append((b, asyncio.ensure_future(reader.fetch(b))))
            if len(pending) >= PARALLEL:
                done, task = pending.pop(0)
                yield (done.x, done.y, done.w, done.h), np.array(await task)
        while pending:
            done, task = pending.pop(0)
            yield (done.x, done.y, done.w, done.h), np.array(await task)
    finally:
        for _, task in pending:
            task.cancel()


async def download_original(image: Image, path: Path) -> Path:
    """Stream the source file to ``path`` (a folder: the original file name inside it);
    written to a ``.part`` file renamed at the end, so a broken download leaves nothing."""
    t = image.client.t
    async with t.stream("GET", f"/api/images/{image.id}/original") as resp:
        if await asyncio.to_thread(path.is_dir):
            path = path / (image.source_filename or f"image-{image.id}")
        part = path.with_name(path.name + ".part")
        try:
            fh = await asyncio.to_thread(open, part, "wb")
            with fh:
                async for chunk in resp.aiter_bytes(1 << 20):
                    await asyncio.to_thread(fh.write, chunk)
            await asyncio.to_thread(part.replace, path)
        except BaseException:
            await asyncio.to_thread(part.unlink, True)
            raise
    return path


async def download_export(image: Image, path: Path, codec: str = "zstd") -> Path:
    """Stream the portable OME-Zarr of the image (a zip; stock zarr opens it with
    ``zarr.storage.ZipStore``) to ``path`` (a folder: ``<name>.ome.zarr.zip`` inside
    it); written to a ``.part`` file renamed at the end."""
    t = image.client.t
    async with t.stream("GET", f"/api/images/{image.id}/export",
                        params={"format": "ome-zarr", "codec": codec}) as resp:
        if await asyncio.to_thread(path.is_dir):
            disp = resp.headers.get("content-disposition", "")
            name = disp.split('filename="')[-1].rstrip('"') if 'filename="' in disp else ""
            path = path / (Path(name).name or f"image-{image.id}.ome.zarr.zip")
        part = path.with_name(path.name + ".part")
        try:
            fh = await asyncio.to_thread(open, part, "wb")
            with fh:
                async for chunk in resp.aiter_bytes(1 << 20):
                    await asyncio.to_thread(fh.write, chunk)
            await asyncio.to_thread(part.replace, path)
        except BaseException:
            await asyncio.to_thread(part.unlink, True)
            raise
    return path
