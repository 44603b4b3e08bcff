"""The tile servers under test, each mapped onto the same tile list.

A `ServerSpec` knows how to start one server on a free loopback port and how
to spell a Deep Zoom tile, a thumbnail and a IIIF region in that server's URL
scheme.  `None` for a URL kind means the server cannot answer it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.peers import iipsrv
from bench.procs import Proc, free_port

PY = sys.executable


@dataclass
class ServerSpec:
    name: str
    #: Human description for RESULTS.md (what runs, how many processes).
    setup: str
    make_argv: Callable[[int, Path], list[str]]
    ready_path: str
    tile: Callable[[int, int, int], str]
    thumbnail: Callable[[int], str] | None = None
    iiif: Callable[[str], str] | None = None
    port: int = 0
    proc: Proc | None = None

    def start(self, logdir: Path) -> None:
        self.port = free_port()
        work = logdir / self.name
        self.proc = Proc(self.name, self.make_argv(self.port, work), logdir / f"{self.name}.log")
        self.proc.start()
        try:
            self.proc.wait_ready(self.base + self.ready_path)
        except BaseException:
            self.stop()  # never leave a half-started server behind
            raise

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


def microtome(root: Path, image_id: str, workers: int) -> ServerSpec:
    root = root.resolve()
    return ServerSpec(
        name="microtome",
        setup=f"`microtome tiles --workers {workers}` over the OME-Zarr (JPEG chunks, Q75)",
        make_argv=lambda port, _w: [PY, "-m", "microtome", "tiles", "--root", str(root),
                                    "--host", "127.0.0.1", "--port", str(port),
                                    "--workers", str(workers)],
        ready_path=f"/dzi/{image_id}.dzi",
        tile=lambda lv, c, r: f"/dzi/{image_id}_files/{lv}/{c}_{r}.jpg",
        thumbnail=lambda n: f"/images/{image_id}/thumbnail.jpg?size={n}",
        iiif=lambda rest: f"/iiif/3/{image_id}/{rest}",
    )


def _python_peer(name: str, module: str, slide: Path, threads: int, procs: int,
                 setup: str) -> ServerSpec:
    return ServerSpec(
        name=name,
        setup=setup,
        make_argv=lambda port, _w: [PY, "-m", module, str(slide), "--port", str(port),
                                    "--threads", str(threads), "--processes", str(procs),
                                    "--quality", "75"],
        ready_path="/health",
        tile=lambda lv, c, r: f"/dzi/slide_files/{lv}/{c}_{r}.jpg",
        thumbnail=lambda n: f"/thumbnail.jpg?size={n}",
    )


def openslide_peer(slide: Path, threads: int, procs: int) -> ServerSpec:
    slide = slide.resolve()
    return _python_peer(
        "openslide", "bench.peers.openslide_server", slide, threads, procs,
        f"openslide-python DeepZoomGenerator + aiohttp, {procs} process(es) on one port, "
        f"{threads} threads each, on the SVS",
    )


def large_image_peer(slide: Path, threads: int, procs: int) -> ServerSpec:
    slide = slide.resolve()
    return _python_peer(
        "large_image", "bench.peers.large_image_server", slide, threads, procs,
        f"large_image (openslide source) + aiohttp, {procs} process(es) on one port, "
        f"{threads} threads each, on the SVS",
    )


def iipimage_peer(tif: Path, procs: int) -> ServerSpec:
    tif = tif.resolve()  # iipsrv resolves image paths against its own working directory
    def argv(port: int, work: Path) -> list[str]:
        conf = iipsrv.write_config(work, port, procs)
        return [str(iipsrv.LIGHTTPD), "-D", "-f", str(conf)]

    return ServerSpec(
        name="iipimage",
        setup=f"IIPImage {procs} FastCGI processes behind lighttpd, on the vips x2 pyramid TIFF",
        make_argv=argv,
        ready_path=iipsrv.dzi_path(tif),
        tile=lambda lv, c, r: iipsrv.dzi_tile_path(tif, lv, c, r),
        thumbnail=lambda n: iipsrv.iiif_path(tif, f"full/!{n},{n}/0/default.jpg"),
        iiif=lambda rest: iipsrv.iiif_path(tif, rest),
    )
