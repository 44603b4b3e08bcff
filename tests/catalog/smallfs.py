"""A real, small filesystem that tests can fill up: tmpfs mounted on a directory.

Mounting needs root (CAP_SYS_ADMIN); the test machines run as root.  Without
that privilege the fixture falls back to the server's own free-space reserve
(``settings.disk_reserve_bytes`` set so that only `size` bytes remain free),
which exercises the same refusals but not a real ENOSPC from the kernel.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass
class SmallDisk:
    path: Path
    #: True: a real tmpfs of `size` bytes; False: the reserve fallback.
    real: bool
    size: int

    @property
    def reserve(self) -> int:
        """The disk_reserve_bytes the server must run with."""
        if self.real:
            return 0
        return max(0, shutil.disk_usage(self.path).free - self.size)

    def grow(self, size: int) -> None:
        """More room (a real remount, keeping the files)."""
        self.size = size
        if self.real:
            subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)],
                           check=True, capture_output=True)


def _mount(path: Path, size: int) -> bool:
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                        str(path)], check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


@contextmanager
def small_disk(path: Path, size: int) -> Iterator[SmallDisk]:
    """`path` (created) on a filesystem with about `size` bytes of room."""
    path.mkdir(parents=True, exist_ok=True)
    real = _mount(path, size)
    try:
        yield SmallDisk(path, real, size)
    finally:
        if real:
            subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)
