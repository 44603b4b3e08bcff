"""Real processes for the scale-out tests: a throwaway PostgreSQL, `microtome serve`
and `microtome tiles` processes, and Debian's HAProxy in front of them.

Nothing here is mocked: the servers are the installed CLI in subprocesses, the
database is a PostgreSQL 15 cluster of our own (never the machine's shared one,
because the tests restart it), and HAProxy is the Debian package — installed by
``ensure_haproxy`` when missing, failing loudly when that is impossible.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _apt_install(package: str) -> None:
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", package]):
        done = subprocess.run([*sudo, *cmd], env=env, capture_output=True, text=True,
                              timeout=600, check=False)
        if done.returncode != 0:
            pytest.fail(f"cannot install Debian {package} ({' '.join(cmd)}): "
                        f"{done.stderr.strip()[-500:]}; install it by hand (make haproxy)")


def ensure_haproxy() -> str:
    """The haproxy binary; installed from Debian when missing (never a skip)."""
    found = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if found is None:
        _apt_install("haproxy")
        found = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(found).exists():
        pytest.fail("haproxy is not installed and could not be installed")
    return found


def wait_http(url: str, timeout: float = 60.0, ok: tuple[int, ...] = (200,)) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status in ok:
                    return
                last = r.status
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"{url} not answering within {timeout} s: {last!r}")


class TempPostgres:
    """A PostgreSQL 15 cluster in a temporary directory, on a free TCP port.

    Run as the ``postgres`` system user when the tests run as root (PostgreSQL
    refuses root).  ``restart`` is what an operator's restart does: every
    connection is cut, the server comes back on the same port."""

    def __init__(self) -> None:
        if not (PG_BIN / "pg_ctl").exists():
            _apt_install("postgresql-15")
        self.dir = Path(tempfile.mkdtemp(prefix="microtome-lb-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8")
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run([*self._as, str(PG_BIN / tool), *args], capture_output=True,
                              text=True, timeout=120, check=False, cwd=self.dir)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed: {done.stdout}{done.stderr}")

    def _ctl(self, action: str) -> None:
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
                " -c fsync=off -c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-w",
                  "-m", "fast", "-o", opts, action)

    def start(self) -> None:
        self._ctl("start")

    def restart(self) -> None:
        self._ctl("restart")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._ctl("stop")
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Proc:
    name: str
    port: int
    cmd: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        fh = open(self.log, "ab")
        self.popen = subprocess.Popen(self.cmd, env=self.env, stdout=fh, stderr=subprocess.STDOUT,
                                      cwd=ROOT, start_new_session=True)

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""


def serve_proc(name: str, var: Path, db_url: str, logs: Path, job_workers: int = 0,
               extra_env: dict[str, str] | None = None) -> Proc:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "MICROTOME_VAR": str(var),
           "MICROTOME_SECRET": "scale-out-test-secret-0123456789",
           "MICROTOME_JOB_WORKERS": str(job_workers),
           # HAProxy on loopback: its X-Forwarded-For names the real client.
           "MICROTOME_TRUSTED_PROXIES": "127.0.0.1", "PYTHONUNBUFFERED": "1",
           **(extra_env or {})}
    env.pop("MICROTOME_DASK_SCHEDULER", None)
    return Proc(name, port, [sys.executable, "-m", "microtome", "serve", "--port", str(port)],
                env, logs / f"{name}.log")


def tiles_proc(name: str, root: Path | str, logs: Path, threads: int | None = None,
               extra_env: dict[str, str] | None = None) -> Proc:
    """`microtome tiles --root ROOT` (a folder or an s3:// URL; AWS variables in extra_env)."""
    port = free_port()
    cmd = [sys.executable, "-m", "microtome", "tiles", "--root", str(root), "--port", str(port)]
    if threads:
        cmd += ["--threads", str(threads)]
    env = {**os.environ, "MICROTOME_TRUSTED_PROXIES": "127.0.0.1", "PYTHONUNBUFFERED": "1",
           **(extra_env or {})}
    return Proc(name, port, cmd, env, logs / f"{name}.log")


HAPROXY_TEMPLATE = """\
global
    maxconn 2000
    log stderr format raw local0 warning

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout queue 10s
    option forwardfor
    # A backend that dies: connection failures and empty answers of idempotent
    # requests are retried on the other server (PATCH/POST never are).
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout 502 503
    default-server inter 500ms fall 2 rise 2

frontend app
    bind 127.0.0.1:{app_port}
    default_backend serve

frontend tiles
    bind 127.0.0.1:{tiles_port}
    default_backend tiles

backend serve
    balance roundrobin
    option httpchk GET /api/openapi.json
    http-response set-header X-Backend %s
{serve_servers}

backend tiles
    balance roundrobin
    option httpchk GET /metrics
    http-response set-header X-Backend %s
{tiles_servers}
"""


@dataclass
class Balancer:
    binary: str
    config: Path
    app_port: int
    tiles_port: int
    popen: subprocess.Popen[bytes] | None = None
    log: Path = field(default_factory=Path)

    @classmethod
    def write(cls, binary: str, workdir: Path, serve: list[Proc], tiles: list[Proc],
              app_port: int | None = None, tiles_port: int | None = None) -> Balancer:
        app_port, tiles_port = app_port or free_port(), tiles_port or free_port()

        def servers(procs: list[Proc]) -> str:
            return "\n".join(f"    server {p.name} 127.0.0.1:{p.port} check" for p in procs)

        text = HAPROXY_TEMPLATE.format(app_port=app_port, tiles_port=tiles_port,
                                       serve_servers=servers(serve), tiles_servers=servers(tiles))
        config = workdir / "haproxy.cfg"
        config.write_text(text)
        return cls(binary, config, app_port, tiles_port, log=workdir / "haproxy.log")

    def start(self) -> None:
        check = subprocess.run([self.binary, "-c", "-f", str(self.config)], capture_output=True,
                               text=True, timeout=30, check=False)
        assert check.returncode == 0, check.stdout + check.stderr
        fh = open(self.log, "ab")
        self.popen = subprocess.Popen([self.binary, "-db", "-f", str(self.config)],
                                      stdout=fh, stderr=subprocess.STDOUT,
                                      start_new_session=True)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()


@contextlib.contextmanager
def running(*procs: Proc) -> Iterator[None]:
    try:
        for p in procs:
            p.start()
        yield
    finally:
        for p in procs:
            p.stop()
