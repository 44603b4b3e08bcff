"""Child processes for the benchmark: start in their own process group, ready-check,
measure CPU and RSS of the whole process tree from /proc, stop by PID.

Every server is started with ``start_new_session=True`` so its workers (lighttpd's
FastCGI children, SO_REUSEPORT workers) share its process group; stopping sends
SIGTERM to that group, then SIGKILL to whatever in the tree is still alive.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces: split after its closing parenthesis.
    return raw[raw.rindex(")") + 2 :].split()


def tree_pids(root: int) -> list[int]:
    """root and all its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st:
                children.setdefault(int(st[1]), []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def tree_cpu_seconds(root: int) -> float:
    """User+system CPU of the live tree, plus what its reaped children used."""
    total = 0
    for pid in tree_pids(root):
        st = _stat(pid)
        if st:
            # Fields 14-17 of /proc/PID/stat (utime, stime, cutime, cstime); st starts at field 3.
            total += sum(int(x) for x in st[11:15])
    return total / CLK_TCK


def vm_hwm_bytes(pid: int) -> int:
    """Peak RSS of one process since its exec (VmHWM), 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss_bytes(root: int) -> int:
    total = 0
    for pid in tree_pids(root):
        st = _stat(pid)
        if st:
            total += int(st[21]) * PAGE  # field 24: rss in pages
    return total


@dataclass
class Proc:
    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    popen: subprocess.Popen | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as fh:
            self.popen = subprocess.Popen(
                self.argv,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                cwd=self.cwd,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def wait_ready(self, url: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen is not None and self.popen.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.popen.returncode}; see {self.log}")
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s; see {self.log}")

    def stop(self, grace: float = 5.0) -> None:
        if self.popen is None:
            return
        pids = tree_pids(self.pid)
        try:
            os.killpg(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            pass
        for pid in pids:  # anything that left the group or ignored SIGTERM
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            pass
        self.popen = None


def run_measured(argv: list[str], log: Path, env: dict[str, str] | None = None,
                 timeout: float = 3600) -> dict[str, Any]:
    """Run a command to completion: wall time, exit code, CPU seconds, peak RSS of the
    largest process (its VmHWM, sampled every 0.1 s) and of the whole tree (sum of
    RSS, sampled).  wait4's ru_maxrss is not used: after vfork/exec Linux folds
    the parent's high-water mark into the child's, which would report our own
    benchmark process's peak instead of the tool's."""
    p = Proc("cmd", argv, log, env or {})
    t0 = time.perf_counter()
    p.start()
    peak_tree = 0
    peak_one = 0
    status = None
    ru = None
    try:
        while True:
            pid, st, r = os.wait4(p.pid, os.WNOHANG)
            if pid:
                status, ru = st, r
                break
            peak_tree = max(peak_tree, tree_rss_bytes(p.pid))
            peak_one = max([peak_one, *(vm_hwm_bytes(q) for q in tree_pids(p.pid))])
            if time.perf_counter() - t0 > timeout:
                raise RuntimeError(f"{argv[0]} timed out after {timeout:.0f} s")
            time.sleep(0.1)
    except BaseException:
        p.stop()  # timed out or interrupted: take the tool's whole process group down
        raise
    wall = time.perf_counter() - t0
    assert ru is not None and status is not None
    if p.popen is not None:
        p.popen.returncode = os.waitstatus_to_exitcode(status)
    return {
        "wall_s": wall,
        "exit": os.waitstatus_to_exitcode(status),
        "peak_rss_bytes": peak_one,
        "peak_tree_rss_bytes": peak_tree,
        "cpu_s": ru.ru_utime + ru.ru_stime,
    }
