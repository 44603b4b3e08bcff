"""`microtome tiles`: N workers on one port, a clear error when the port is taken."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .conftest import build_rgb, gradient_rgb


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read()


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            _get(url)
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("server did not start")


def test_workers_share_the_port_and_port_in_use_is_reported(tmp_path: Path) -> None:
    build_rgb(tmp_path / "slide.ome.zarr", gradient_rgb(300, 400))
    port = _free_port()
    cmd = [sys.executable, "-m", "microtome", "tiles", "--root", str(tmp_path),
           "--port", str(port)]
    proc = subprocess.Popen([*cmd, "--workers", "2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(f"{base}/dzi/slide.dzi", proc)
        for _ in range(20):  # connections are spread over both workers; all answer
            status, body = _get(f"{base}/dzi/slide_files/9/0_0.jpg")
            assert status == 200 and body[:2] == b"\xff\xd8"
        # Each new connection lands on one of the workers (SO_REUSEPORT hashing); the
        # second worker may still be starting, so keep asking for a while.
        pids: set[str] = set()
        deadline = time.monotonic() + 30
        while len(pids) < 2 and time.monotonic() < deadline:
            text = _get(f"{base}/metrics")[1].decode()
            pids.update(ln.split('pid="')[1].split('"')[0] for ln in text.splitlines()
                        if 'pid="' in ln)
        assert len(pids) == 2
        # A worker that dies is replaced; the port keeps answering meanwhile.
        os.kill(int(sorted(pids)[0]), signal.SIGKILL)
        new_pids: set[str] = set()
        deadline = time.monotonic() + 30
        while not (new_pids - pids) and time.monotonic() < deadline:
            try:
                text = _get(f"{base}/metrics")[1].decode()
            except OSError:
                continue
            new_pids.update(ln.split('pid="')[1].split('"')[0] for ln in text.splitlines()
                            if 'pid="' in ln)
        assert new_pids - pids, "dead worker was not replaced"
        second = subprocess.run([*cmd, "--workers", "1"], capture_output=True, text=True,
                                timeout=60)
        assert second.returncode != 0
        assert "already in use" in second.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0


def test_missing_root_is_a_usage_error(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "microtome", "tiles", "--root",
                        str(tmp_path / "nope")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "not a directory" in r.stderr
