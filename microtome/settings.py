"""All settings, read from the environment in this one place."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"error: {name} must be an integer, got {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    #: Where images, uploads and the embedded database live.
    var_dir: Path = Path("var")
    #: External PostgreSQL; None means the embedded pgserver under var_dir/pg.
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    #: HMAC key for signed tile URLs and share links.
    secret_key: bytes = field(default=b"", repr=False)
    #: Largest accepted upload, bytes.
    upload_max_bytes: int = 20 * 1024**3
    #: Conversion worker processes (0 = no workers in this process).
    job_workers: int = 1
    #: Threads for tile decode/encode (CPU work off the event loop).
    tile_threads: int = os.cpu_count() or 2
    #: Encoded-tile cache size, bytes.
    tile_cache_bytes: int = 256 * 1024**2
    #: Signed tile URLs: lifetime when the client asks for none, and the most it may ask.
    signed_url_default_seconds: int = 3600
    signed_url_max_seconds: int = 12 * 3600
    #: Longest lifetime of a share link, seconds.
    share_link_max_seconds: int = 365 * 86400
    #: Sessions end this long after login, or after this long without a request.
    session_hours: int = 14 * 24
    session_idle_minutes: int = 24 * 60
    #: /metrics of `serve` is for administrators; a port here also serves it without
    #: login on a separate listener bound to 127.0.0.1 (for a local Prometheus).
    metrics_port: int = 0
    #: Peers (IPs or CIDR networks) whose X-Forwarded-* headers are believed.
    trusted_proxies: tuple[str, ...] = ()
    #: Where the built front-end assets are.
    frontend_dir: Path = Path(__file__).resolve().parent.parent / "frontend"

    @property
    def images_dir(self) -> Path:
        return self.var_dir / "images"

    @property
    def uploads_dir(self) -> Path:
        return self.var_dir / "uploads"


def _secret(var_dir: Path) -> bytes:
    """MICROTOME_SECRET, else a random key persisted under var/ so restarts keep links valid."""
    env = os.environ.get("MICROTOME_SECRET")
    if env:
        return env.encode()
    path = var_dir / "secret.key"
    if path.exists():
        return path.read_bytes()
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


def from_env(**overrides: object) -> Settings:
    """Settings from MICROTOME_* variables and DATABASE_URL; keyword overrides win."""
    var_dir = Path(str(overrides.pop("var_dir", None) or os.environ.get("MICROTOME_VAR", "var")))
    values: dict[str, object] = {
        "var_dir": var_dir.resolve(),
        "database_url": os.environ.get("DATABASE_URL") or None,
        "host": os.environ.get("MICROTOME_HOST", "127.0.0.1"),
        "port": _int("MICROTOME_PORT", 8000),
        "upload_max_bytes": _int("MICROTOME_UPLOAD_MAX_BYTES", 20 * 1024**3),
        "job_workers": _int("MICROTOME_JOB_WORKERS", 1),
        "tile_threads": _int("MICROTOME_TILE_THREADS", os.cpu_count() or 2),
        "tile_cache_bytes": _int("MICROTOME_TILE_CACHE_MB", 256) * 1024**2,
        "signed_url_default_seconds": _int("MICROTOME_SIGNED_URL_DEFAULT_SECONDS", 3600),
        "signed_url_max_seconds": _int("MICROTOME_SIGNED_URL_MAX_SECONDS", 12 * 3600),
        "share_link_max_seconds": _int("MICROTOME_SHARE_LINK_MAX_SECONDS", 365 * 86400),
        "session_hours": _int("MICROTOME_SESSION_HOURS", 14 * 24),
        "session_idle_minutes": _int("MICROTOME_SESSION_IDLE_MINUTES", 24 * 60),
        "metrics_port": _int("MICROTOME_METRICS_PORT", 0),
        "trusted_proxies": tuple(p.strip() for p in os.environ.get(
            "MICROTOME_TRUSTED_PROXIES", "").split(",") if p.strip()),
    }
    values.update(overrides)
    if "secret_key" not in values:
        values["secret_key"] = _secret(Path(str(values["var_dir"])))
    return Settings(**values)  # type: ignore[arg-type]
