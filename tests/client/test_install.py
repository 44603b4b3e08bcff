"""`pip install ./client` into a fresh venv: only the client's dependencies, and it works."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.client.conftest import LiveServer
from tests.conftest import REPO


def test_pip_install_into_a_fresh_venv(live_server: LiveServer, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    # The machine's pip configuration (local index and cache) applies as for any user.
    install = subprocess.run([str(py), "-m", "pip", "install", "--quiet",
                              "--disable-pip-version-check", str(REPO / "client")],
                             capture_output=True, text=True, timeout=540)
    assert install.returncode == 0, install.stdout + install.stderr
    probe = f"""
import importlib.util, sys
for server_dep in ("asyncpg", "aiohttp", "zarr", "openslide", "shapely"):
    assert importlib.util.find_spec(server_dep) is None, server_dep
try:
    import asyncpg
except ImportError:
    pass
else:
    sys.exit("asyncpg importable")
from microtome_client import Client
with Client({live_server.url!r}, api_key={live_server.api_key!r}) as c:
    print("user", c.me().username)
"""
    run = subprocess.run([str(py), "-c", probe], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "user admin" in run.stdout
    cli = subprocess.run([str(venv / "bin" / "microtome-client"), "--help"],
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0 and "upload" in cli.stdout
