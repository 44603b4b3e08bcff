"""Uploads over tus (``/api/uploads``): resumable, parallel, with progress, then wait.

Resuming: each started upload's URL is remembered in a small JSON state file
(default ``~/.cache/microtome-client/uploads.json``; ``MICROTOME_UPLOAD_STATE``
or ``state_file=`` to move it), keyed by server, project, absolute path, size
and modification time.  A dropped connection is resumed in place (HEAD for
the server's offset, then PATCH from there); a restarted script finds the URL
in the state file and does the same.  The server creates the image only when
the last byte arrives, so a resumed upload never makes a second image, and a
finished one is not sent again (its image is returned) unless ``reupload``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import APIError, ConnectionFailed, ConversionFailed, MicrotomeError, NotFound
from .image import Image

try:
    import fcntl
except ImportError:  # Windows: the thread lock alone
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from .core import AsyncClient

TUS = {"Tus-Resumable": "1.0.0"}
#: Bytes per PATCH request (streamed from the file in READ pieces: memory stays flat).
CHUNK = 64 * 1024**2
READ = 1024**2
#: Resume attempts after a dropped connection within one upload.
RESUMES = 5
Progress = Callable[[Path, int, int], None]


@dataclass
class UploadResult:
    """One file's outcome: its image (ready when waited for) or the error."""

    path: Path
    image: Image | None = None
    error: str | None = None
    upload_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.image is not None


class StateFile:
    """``{key: {"upload_id", "image_id"?}}`` in a JSON file, rewritten atomically.

    Parallel uploads update it from several threads (and scripts may run side by
    side): each read-modify-write holds a thread lock and, where available, an
    advisory lock on a ``.lock`` file beside it.
    """

    _lock = threading.Lock()

    def __init__(self, path: str | Path | None = None) -> None:
        default = Path.home() / ".cache" / "microtome-client" / "uploads.json"
        self.path = Path(path or os.environ.get("MICROTOME_UPLOAD_STATE") or default)

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self._load().get(key)

    def put(self, key: str, value: dict[str, Any] | None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_EX)
            data = self._load()
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{uuid.uuid4().hex}")
            tmp.write_text(json.dumps(data, indent=1))
            tmp.replace(self.path)


def state_key(url: str, project_id: int, path: Path) -> str:
    st = path.stat()
    return f"{url}|{project_id}|{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def _metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def expand(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Files to upload: folders contribute their files (not hidden ones), sorted."""
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    out: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            out.extend(sorted(p for p in item.rglob("*")
                              if p.is_file() and not any(s.startswith(".") for s in
                                                         p.relative_to(item).parts)))
        elif item.is_file():
            out.append(item)
        else:
            raise FileNotFoundError(f"no such file or folder: {item}")
    return out


async def _file_pieces(path: Path, start: int, end: int) -> AsyncIterator[bytes]:
    fh = await asyncio.to_thread(open, path, "rb")
    try:
        await asyncio.to_thread(fh.seek, start)
        left = end - start
        while left > 0:
            data = await asyncio.to_thread(fh.read, min(READ, left))
            if not data:
                raise MicrotomeError(f"{path} shrank while uploading")
            left -= len(data)
            yield data
    finally:
        fh.close()


class _Uploader:
    def __init__(self, client: AsyncClient, project_id: int, state: StateFile,
                 progress: Progress | None, chunk: int) -> None:
        self.client, self.project_id, self.state = client, project_id, state
        self.progress, self.chunk = progress, chunk

    async def _offset(self, upload_id: str) -> int:
        resp = await self.client.t.request("HEAD", f"/api/uploads/{upload_id}", headers=TUS)
        return int(resp.headers["Upload-Offset"])

    async def _create(self, path: Path, size: int) -> str:
        headers = {**TUS, "Upload-Length": str(size),
                   "Upload-Metadata": _metadata(filename=path.name,
                                                project_id=str(self.project_id))}
        resp = await self.client.t.request("POST", "/api/uploads", headers=headers)
        return resp.headers["Location"].rstrip("/").rsplit("/", 1)[-1]

    async def _patch(self, upload_id: str, path: Path, offset: int, size: int) -> int:
        end = min(size, offset + self.chunk)
        headers = {**TUS, "Upload-Offset": str(offset), "Content-Length": str(end - offset),
                   "Content-Type": "application/offset+octet-stream"}
        resp = await self.client.t.request("PATCH", f"/api/uploads/{upload_id}",
                                           headers=headers, idempotent=False,
                                           content=_file_pieces(path, offset, end))
        return int(resp.headers["Upload-Offset"])

    async def send(self, path: Path, reupload: bool) -> tuple[str, int]:
        """Upload (or resume) one file; (upload id, image id) once complete."""
        size = (await asyncio.to_thread(path.stat)).st_size
        key = await asyncio.to_thread(state_key, self.client.url, self.project_id, path)
        saved = None if reupload else await asyncio.to_thread(self.state.get, key)
        upload_id, offset = None, 0
        if saved:
            if saved.get("image_id"):
                try:
                    await self.client.image(saved["image_id"])
                    return saved["upload_id"], int(saved["image_id"])
                except NotFound:
                    pass  # the image was deleted since: upload again
            else:
                try:
                    upload_id = saved["upload_id"]
                    offset = await self._offset(upload_id)
                except NotFound:
                    upload_id = None  # expired or cancelled on the server
        if upload_id is None:
            upload_id, offset = await self._create(path, size), 0
            await asyncio.to_thread(self.state.put, key, {"upload_id": upload_id})
        self._report(path, offset, size)
        failures = 0
        while offset < size:
            try:
                offset = await self._patch(upload_id, path, offset, size)
                failures = 0
            except (ConnectionFailed, APIError) as e:
                # Dropped connection, restart, or an offset the server disagrees with:
                # ask where the server is and carry on from there.
                if isinstance(e, APIError) and e.status not in (409, 502, 503, 504):
                    raise
                failures += 1
                if failures > RESUMES:
                    raise
                await asyncio.sleep(min(5.0, 0.5 * 2 ** failures))
                offset = await self._offset(upload_id)
            self._report(path, offset, size)
        image_id = await self._image_id(upload_id)
        await asyncio.to_thread(self.state.put, key,
                                {"upload_id": upload_id, "image_id": image_id})
        return upload_id, image_id

    async def _image_id(self, upload_id: str) -> int:
        tries = 0
        while tries < 50:  # completion is committed before the last PATCH answers
            st = await self.client.upload_state(upload_id)
            if st.get("image_id"):
                return int(st["image_id"])
            if st.get("waiting_for"):
                # One half of an imzML pair: the image comes when the other half
                # (sent in this same call, see upload_files) has all its bytes.
                await asyncio.sleep(0.5)
                continue
            tries += 1
            await asyncio.sleep(0.1)
        raise MicrotomeError(f"upload {upload_id} complete but no image was created")

    def _report(self, path: Path, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(path, done, total)


async def wait_ready(client: AsyncClient, image_id: int, *,
                     timeout: float | None = 3600,  # noqa: ASYNC109 (a deadline, not I/O)
                     poll: float = 0.5, filename: str = "") -> Image:
    """The image once converted; `ConversionFailed` with the job's reason if it failed."""
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = poll
    while True:
        image = await client.image(image_id)
        if image.status == "ready":
            return image
        if image.status == "failed":
            reason = "conversion failed"
            async for job in image.jobs():
                reason = job.error or reason
            raise ConversionFailed(filename or image.source_filename, reason, image_id)
        if deadline is not None and time.monotonic() > deadline:
            raise MicrotomeError(f"image {image_id} not ready after {timeout} s "
                                 f"(status {image.status})")
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 5.0)


def _bars(paths: list[Path]) -> tuple[Progress, Callable[[], None]]:
    """One tqdm bar per file (bytes sent)."""
    from tqdm import tqdm

    bars: dict[Path, Any] = {}
    for i, p in enumerate(paths):
        bars[p] = tqdm(total=p.stat().st_size, desc=p.name[:30], unit="B", unit_scale=True,
                       unit_divisor=1024, position=i, leave=True, dynamic_ncols=True)

    def update(path: Path, done: int, total: int) -> None:
        bar = bars[path]
        bar.update(done - bar.n)

    def close() -> None:
        for bar in bars.values():
            bar.close()

    return update, close


def lone_msi_halves(files: list[Path]) -> dict[Path, str]:
    """imzML images are two files (X.imzML + X.ibd) the server joins into one
    image; a half given without the other would wait on the server until it
    expires, so it is refused here with the file it needs."""
    names = {p.name.lower() for p in files}
    out: dict[Path, str] = {}
    for p in files:
        ext = p.suffix.lower()
        if ext in (".imzml", ".ibd") and p.stem:
            other = p.stem + (".ibd" if ext == ".imzml" else ".imzML")
            if other.lower() not in names:
                out[p] = (f"{p.name} is one half of a mass spectrometry image: "
                          f"upload {other} with it")
    return out


async def upload_files(client: AsyncClient, project_id: int,
                       paths: str | Path | Iterable[str | Path], *, wait: bool = True,
                       progress: bool | Progress = True, parallel: int = 3,
                       state_file: str | Path | None = None, reupload: bool = False,
                       chunk_size: int = CHUNK, wait_timeout: float | None = 3600
                       ) -> list[UploadResult]:
    """Upload files (folders: their files) into a project; one result per file, in order.

    A file that fails (upload refused, conversion failed) gets its ``error``; the
    others still complete.  With ``wait``, images are returned once converted.
    """
    await client._ensure_login()
    files = await asyncio.to_thread(expand, paths)
    close: Callable[[], None] = lambda: None  # noqa: E731
    report: Progress | None = None
    if callable(progress):
        report = progress
    elif progress and files:
        report, close = _bars(files)
    up = _Uploader(client, project_id, StateFile(state_file), report, chunk_size)
    sem = asyncio.Semaphore(max(1, parallel))
    lone = lone_msi_halves(files)

    async def one(path: Path) -> UploadResult:
        result = UploadResult(path)
        if path in lone:
            result.error = lone[path]
            return result
        try:
            async with sem:
                result.upload_id, image_id = await up.send(path, reupload)
            if wait:
                result.image = await wait_ready(client, image_id, timeout=wait_timeout,
                                                filename=path.name)
            else:
                result.image = await client.image(image_id)
        except ConversionFailed as e:
            result.error = e.reason
            result.image = await client.image(e.image_id) if e.image_id else None
        except (MicrotomeError, OSError) as e:
            result.error = str(e)
        return result

    try:
        return list(await asyncio.gather(*(one(p) for p in files)))
    finally:
        close()
