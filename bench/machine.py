"""Describe the machine and software versions, for the header of RESULTS.md."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path


def _cmd(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "n/a"


def _dpkg(pkg: str) -> str:
    return _cmd(["dpkg-query", "-W", "-f=${Version}", pkg]) if shutil.which("dpkg-query") else "n/a"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe() -> dict:
    versions = {}
    for dist in ("aiohttp", "zarr", "numpy", "imagecodecs", "tifffile", "pillow",
                 "openslide-python", "openslide-bin", "large-image",
                 "large-image-source-openslide", "uvloop"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = "not installed"
    try:
        import openslide

        versions["libopenslide"] = openslide.__library_version__
    except Exception:
        versions["libopenslide"] = "n/a"
    versions["vips"] = _cmd(["vips", "--version"])
    versions["iipimage-server (deb)"] = _dpkg("iipimage-server")
    versions["lighttpd (deb)"] = _dpkg("lighttpd")
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "versions": versions,
        "git_commit": _cmd(["git", "-C", str(Path(__file__).parent), "rev-parse", "--short",
                            "HEAD"]),
        "loadavg": os.getloadavg(),
    }
