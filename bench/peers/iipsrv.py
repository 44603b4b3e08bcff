"""Peer: IIPImage (Debian ``iipimage-server``) as FastCGI workers behind ``lighttpd``.

This is the C++ server of Cytomine's original design.  lighttpd spawns
``procs`` iipsrv FastCGI processes on a private Unix socket and listens on a
loopback port; iipsrv re-encodes tiles at JPEG_QUALITY from a x2 pyramid TIFF
(made with ``vips tiffsave --tile --pyramid``).  Its own tile cache is left at
the Debian default size.  URLs: Deep Zoom through
``/fcgi-bin/iipsrv.fcgi?DeepZoom=/abs/slide.tif_files/L/C_R.jpg`` and IIIF
through ``/fcgi-bin/iipsrv.fcgi?IIIF=/abs/slide.tif/...``.
"""

from __future__ import annotations

from pathlib import Path

IIPSRV = Path("/usr/lib/iipimage-server/iipsrv.fcgi")
LIGHTTPD = Path("/usr/sbin/lighttpd")
PREFIX = "/fcgi-bin/iipsrv.fcgi"


def write_config(workdir: Path, port: int, procs: int, quality: int = 75) -> Path:
    """Write a lighttpd config serving iipsrv on 127.0.0.1:port; returns its path."""
    workdir.mkdir(parents=True, exist_ok=True)
    www = workdir / "www"
    www.mkdir(exist_ok=True)
    (www / "index.html").write_text("ok\n")
    conf = workdir / "lighttpd.conf"
    conf.write_text(f"""\
server.modules = ("mod_fastcgi")
server.bind = "127.0.0.1"
server.port = {port}
server.document-root = "{www}"
server.errorlog = "{workdir}/lighttpd-error.log"
server.max-connections = 1024
server.max-keep-alive-requests = 100000
fastcgi.server = (
  "{PREFIX}" => ((
    "socket" => "{workdir}/iipsrv.sock",
    "bin-path" => "{IIPSRV}",
    "check-local" => "disable",
    "min-procs" => {procs},
    "max-procs" => {procs},
    "bin-environment" => (
      "LOGFILE" => "{workdir}/iipsrv.log",
      "VERBOSITY" => "0",
      "JPEG_QUALITY" => "{quality}",
      "MAX_CVT" => "5000",
      "CORS" => "*"
    )
  ))
)
""")
    return conf


def dzi_tile_path(tif: Path, level: int, col: int, row: int) -> str:
    return f"{PREFIX}?DeepZoom={tif}_files/{level}/{col}_{row}.jpg"


def dzi_path(tif: Path) -> str:
    return f"{PREFIX}?DeepZoom={tif}.dzi"


def iiif_path(tif: Path, rest: str) -> str:
    return f"{PREFIX}?IIIF={tif}/{rest}"
