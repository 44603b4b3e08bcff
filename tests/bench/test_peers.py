"""The Python peers run with as many processes as Microtome (same resources)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench.procs import free_port

REPO = Path(__file__).resolve().parents[2]


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(d.name))
    return out


def test_openslide_peer_with_two_processes(testdata: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.peers.openslide_server",
                             str(testdata / "CMU-1-Small-Region.svs"), "--port", str(port),
                             "--threads", "2", "--processes", "2"], cwd=REPO)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "peer did not start"
                time.sleep(0.2)
        assert len(_children(proc.pid)) == 2
        for n in range(8):  # spread over both processes by the kernel
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/dzi/slide_files/10/{n % 2}_0.jpg") as r:
                assert r.status == 200 and r.read()[:2] == b"\xff\xd8"
        kids = _children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        for kid in kids:
            assert not Path(f"/proc/{kid}").exists() or \
                (Path(f"/proc/{kid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z")
    finally:
        if proc.poll() is None:
            for kid in _children(proc.pid):
                os.kill(kid, signal.SIGKILL)
            proc.kill()
