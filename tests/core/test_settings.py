"""Settings: read once from the environment, bad values stop start-up naming the variable."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from microtome.core.settings import SettingsError, from_env, tile_settings_from_env, warn_unknown

REPO = Path(__file__).resolve().parents[2]
PRODUCT = ("core", "pyramid", "converters", "tileserver", "catalog", "annotations", "retrieval",
           "microtome")


@pytest.mark.parametrize(("name", "value"), [
    ("MICROTOME_TILE_CACHE_MB", "lots"),
    ("MICROTOME_TILE_THREADS", "0"),
    ("MICROTOME_DECODED_CACHE_MB", "-5"),
    ("MICROTOME_PORT", "70000"),
    ("MICROTOME_JOB_WORKERS", "two"),
    ("MICROTOME_UPLOAD_MAX_BYTES", "1.5e9"),
    ("MICROTOME_TILE_MAX_AGE", "-1"),
    ("MICROTOME_SECRET", "short"),
    ("MICROTOME_TRUSTED_PROXIES", "10.0.0.1, proxy.example"),
    ("MICROTOME_SESSION_IDLE_MINUTES", "0"),
    ("MICROTOME_RESET_LINK_HOURS", "0"),
    ("MICROTOME_RESET_LINK_HOURS", "a week"),
])
def test_bad_value_names_the_variable(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(SettingsError) as info:
        from_env({name: value, "MICROTOME_VAR": str(tmp_path)})
    assert info.value.name == name
    assert name in str(info.value.code)


def test_values_reach_every_section(tmp_path: Path) -> None:
    s = from_env({"MICROTOME_VAR": str(tmp_path), "MICROTOME_TILE_CACHE_MB": "64",
                  "MICROTOME_DECODED_CACHE_MB": "8", "MICROTOME_TILE_THREADS": "3",
                  "MICROTOME_SECRET": "x" * 32, "MICROTOME_TILE_MAX_AGE": "60"})
    assert (s.tiles.cache_bytes, s.tiles.decoded_cache_bytes) == (64 << 20, 8 << 20)
    assert (s.tiles.threads, s.tiles.max_age) == (3, 60)
    assert s.secret_key == b"x" * 32 and s.var_dir == tmp_path.resolve()


def test_worker_processes_share_the_host_defaults() -> None:
    one, four = tile_settings_from_env({}), tile_settings_from_env({}, workers=4)
    assert four.cache_bytes == one.cache_bytes // 4
    # A value the user gives is per process, as written.
    assert tile_settings_from_env({"MICROTOME_TILE_CACHE_MB": "100"}, workers=4).cache_bytes \
        == 100 << 20


def test_unknown_variables_are_reported(capsys: pytest.CaptureFixture[str]) -> None:
    assert warn_unknown({"MICROTOME_TILE_CACHE": "64", "MICROTOME_PORT": "1"}) == \
        ["MICROTOME_TILE_CACHE"]
    assert "MICROTOME_TILE_CACHE is not a Microtome setting" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["tiles", "serve"])
def test_commands_refuse_bad_values_at_start(tmp_path: Path, command: str) -> None:
    args = ["--root", str(tmp_path)] if command == "tiles" else []
    env = {**os.environ, "MICROTOME_VAR": str(tmp_path / "var"),
           "MICROTOME_TILE_CACHE_MB": "plenty"}
    proc = subprocess.run([sys.executable, "-m", "microtome", command, *args, "--port", "1"],
                          env=env, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 1
    assert "MICROTOME_TILE_CACHE_MB must be an integer, got 'plenty'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_no_environment_reads_outside_the_settings_module() -> None:
    pattern = re.compile(r"os\.environ|os\.getenv|environ\.get\(")
    offenders = [f"{path.relative_to(REPO)}:{n}"
                 for pkg in PRODUCT for path in sorted((REPO / pkg).rglob("*.py"))
                 if path != REPO / "core" / "settings.py"
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if pattern.search(line)]
    assert offenders == []
