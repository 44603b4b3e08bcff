"""Install what the benchmark needs, or say exactly why a peer cannot run.

Debian tools (vips, lighttpd, iipsrv) come from apt-get when missing and we are
root; large_image comes from PyPI into the running interpreter's environment.
Every failure is returned as a reason string that ends up in RESULTS.md.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.peers import iipsrv

APT = {
    "vips": "libvips-tools",
    "lighttpd": "lighttpd",
    "iipsrv": "iipimage-server",
    "wrk": "wrk",  # bench.floor's low-overhead client
}
PIP_LARGE_IMAGE = ["large-image>=1.30", "large-image-source-openslide>=1.30"]


def _have(tool: str) -> bool:
    if tool == "iipsrv":
        return iipsrv.IIPSRV.exists()
    if tool == "lighttpd":
        return iipsrv.LIGHTTPD.exists() or shutil.which("lighttpd") is not None
    return shutil.which(tool) is not None


def _apt_install(packages: list[str], log) -> str | None:
    if os.geteuid() != 0:
        return f"not root: cannot apt-get install {' '.join(packages)}"
    if not shutil.which("apt-get"):
        return "apt-get not available"
    log(f"deps: apt-get install {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900)
        if r.returncode != 0 and argv[1] == "install":
            return f"apt-get install {' '.join(packages)} failed: {r.stderr.strip()[-300:]}"
    return None


def ensure(log=print) -> dict[str, str | None]:
    """Map tool -> None when usable, else the reason it is not."""
    missing = [t for t in APT if not _have(t)]
    status: dict[str, str | None] = {t: None for t in APT}
    if missing:
        err = _apt_install([APT[t] for t in missing], log)
        for t in missing:
            if not _have(t):
                status[t] = err or f"{APT[t]} installed but {t} not found"
    status["large_image"] = None
    if importlib.util.find_spec("large_image_source_openslide") is None:
        log("deps: pip install " + " ".join(PIP_LARGE_IMAGE))
        r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", *PIP_LARGE_IMAGE],
                           capture_output=True, text=True, timeout=900)
        importlib.invalidate_caches()
        if r.returncode != 0 or importlib.util.find_spec("large_image_source_openslide") is None:
            status["large_image"] = "pip install large-image failed: " + r.stderr.strip()[-300:]
    status["microtome"] = None if (Path(__file__).parents[1] / "tileserver" / "cli.py").exists() \
        else "tileserver/cli.py not present (tile server not built yet)"
    return status


def ensure_postgis(server_version_num: int, log=print) -> str | None:
    """Install Debian's PostGIS for a local Debian PostgreSQL that lacks it (the
    annotation suite's SQL comparison); None when installed, else the reason not."""
    major = server_version_num // 10000
    if not Path(f"/usr/lib/postgresql/{major}/bin").is_dir():
        return f"PostgreSQL {major} is not a local Debian server: install PostGIS on it yourself"
    return _apt_install([f"postgresql-{major}-postgis-3"], log)
