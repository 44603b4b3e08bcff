"""All settings, read from the environment in this one place.

`from_env` is called once at start-up (`microtome serve`, `tiles`, the CLI);
every component receives the resulting `Settings` (or its `tiles` section)
as an argument.  A bad value in any ``MICROTOME_*`` variable stops start-up
with a message naming the variable, whichever command reads it.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

#: Variables `from_env` reads; anything else spelled MICROTOME_* is a likely typo.
KNOWN = {"MICROTOME_VAR", "MICROTOME_HOST", "MICROTOME_PORT", "MICROTOME_SECRET",
         "MICROTOME_UPLOAD_MAX_BYTES", "MICROTOME_JOB_WORKERS", "MICROTOME_TILE_THREADS",
         "MICROTOME_TILE_CACHE_MB", "MICROTOME_DECODED_CACHE_MB", "MICROTOME_TILE_MAX_AGE",
         "MICROTOME_SIGNED_URL_DEFAULT_SECONDS", "MICROTOME_SIGNED_URL_MAX_SECONDS",
         "MICROTOME_SHARE_LINK_MAX_SECONDS", "MICROTOME_DISK_RESERVE_MB",
         "MICROTOME_OUTAGE_GRACE_S", "MICROTOME_IDLE_TIMEOUT_S", "MICROTOME_BODY_TIMEOUT_S",
         "MICROTOME_MAX_IDLE_CONNECTIONS", "MICROTOME_MAX_IMAGE_PIXELS",
         "MICROTOME_SESSION_HOURS", "MICROTOME_SESSION_IDLE_MINUTES", "MICROTOME_METRICS_PORT",
         "MICROTOME_TRUSTED_PROXIES",
         # -- collaboration: properties, attachments, activity, follow mode --
         "MICROTOME_ATTACHMENT_MAX_MB", "MICROTOME_ACTIVITY_RETENTION_DAYS",
         "MICROTOME_ACTIVITY_SAMPLE_S", "MICROTOME_FOLLOW_MAX_FOLLOWERS"}
# Scale-out (several servers, domain sharding, dask cluster): issue 18.
KNOWN |= {"MICROTOME_TILE_URLS", "MICROTOME_DASK_SCHEDULER"}
# Analysis apps (issue 16): workers `microtome serve` starts beside itself.
KNOWN |= {"MICROTOME_LOCAL_WORKERS"}
# Trash (deleted projects, images, annotation sets): days kept before the purge job.
KNOWN |= {"MICROTOME_TRASH_DAYS"}
# Retrieval (issue 17): background indexing threads.
KNOWN |= {"MICROTOME_RETRIEVAL_THREADS"}
# --- accounts helper (issue 14): password reset links ---
KNOWN |= {"MICROTOME_RESET_LINK_HOURS"}


class SettingsError(SystemExit):
    """A bad environment value: exits with a one-line message naming the variable."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"error: {name} {problem}")
        self.name = name


def _cpus() -> int:
    return os.cpu_count() or 2


@dataclass(frozen=True)
class TileSettings:
    """The tile server's section of the settings (limits are fixed defaults)."""

    #: Threads for decode/resample/encode and file reads (CPU work off the loop).
    threads: int = field(default_factory=_cpus)
    #: Encoded-tile LRU size, bytes.
    cache_bytes: int = 256 * 1024**2
    #: Decoded-chunk LRU size per process, bytes (unaligned regions reuse decodes).
    decoded_cache_bytes: int = 96 * 1024**2
    #: Opened images kept (metadata + cached shard indexes each).
    max_open_images: int = 256
    #: Largest output of one request (advertised as maxWidth/maxHeight/maxArea).
    max_width: int = 8192
    max_height: int = 8192
    max_area: int = 4096 * 4096
    #: Largest thumbnail edge, pixels.
    max_thumbnail: int = 2048
    #: How long an id → image resolution is trusted (folder mode), seconds.
    resolver_ttl: float = 2.0
    #: Cache-Control max-age for tiles and documents whose URL has no version, seconds.
    max_age: int = 3600


# -- collaboration: properties, attachments, activity, follow mode --------------------
@dataclass(frozen=True)
class CollabSettings:
    #: Largest file attached to an image (reports, tables), bytes.
    attachment_max_bytes: int = 50 * 1024**2
    #: Viewer activity older than this many days is dropped (whole daily partitions).
    activity_retention_days: int = 365
    #: A viewer's position is recorded at most once per this many seconds.
    activity_sample_s: float = 2.0
    #: Most users following one user's live viewport at once.
    follow_max_followers: int = 50


def collab_settings_from_env(env: _Env) -> CollabSettings:
    return CollabSettings(
        attachment_max_bytes=env.int("MICROTOME_ATTACHMENT_MAX_MB", 50, minimum=1,
                                     maximum=1 << 20) * 1024**2,
        activity_retention_days=env.int("MICROTOME_ACTIVITY_RETENTION_DAYS", 365, minimum=1,
                                        maximum=100 * 365),
        activity_sample_s=float(env.int("MICROTOME_ACTIVITY_SAMPLE_S", 2, minimum=1,
                                        maximum=3600)),
        follow_max_followers=env.int("MICROTOME_FOLLOW_MAX_FOLLOWERS", 50, minimum=1,
                                     maximum=10_000))
# -- end collaboration ------------------------------------------------------------------


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
    #: Free disk space kept back for the database and conversions: an upload that
    #: would eat into it is refused (507), a conversion does not start.
    disk_reserve_bytes: int = 512 * 1024**2
    #: While the database is unreachable, a credential keeps the tile access it
    #: had for this long after its last successful check (seconds); 0 = none.
    outage_grace_s: float = 300.0
    #: A connection must deliver a complete request head within this many
    #: seconds of opening or of its previous response, else it is closed.
    idle_timeout_s: float = 15.0
    #: Longest silence (seconds) while the server waits for request body bytes.
    body_timeout_s: float = 60.0
    #: Idle keep-alive connections kept open at most; the oldest go first.
    max_idle_connections: int = 100
    # -- analysis apps (issue 16) --
    #: `microtome worker` processes `serve` starts for queued analyses (0 = none:
    #: analyses then wait for a worker started elsewhere).
    local_workers: int = 1
    #: Trash: days a deleted project, image or annotation set stays restorable.
    trash_days: int = 30
    #: Retrieval (issue 17): threads describing queued annotations in the background
    #: in this process (0 = none: only requests and `microtome reindex` describe).
    retrieval_index_threads: int = 1
    # --- accounts helper (issue 14) ---
    #: Hours a one-time password reset link made by an administrator stays valid.
    reset_link_hours: int = 72
    #: The tile server's section.
    tiles: TileSettings = field(default_factory=TileSettings)
    # --- Scale-out (issue 18) -------------------------------------------------
    #: Tile base URLs the catalog hands to viewers (HTTP/1.1 domain sharding:
    #: browsers open ~6 connections per host, so tiles spread over several host
    #: names load in parallel); empty = tiles from this server's own origin.
    tile_urls: tuple[str, ...] = ()
    #: dask.distributed scheduler (tcp://host:8786) that conversion jobs run on;
    #: None = in the worker process.  Workers must see the data directory at the
    #: same path (shared file system).
    dask_scheduler: str | None = None
    #: Object storage for converted images (MICROTOME_STORAGE, ``s3://bucket/prefix``);
    #: None keeps them under var_dir/images.
    storage: StorageSettings | None = None
    #: Properties, attachments, activity and follow mode.
    collab: CollabSettings = field(default_factory=CollabSettings)
    #: Disk cache of remote chunks, TileDB's S3 endpoint (core/remote.py applies it).
    remote: RemoteReadSettings = field(default_factory=lambda: RemoteReadSettings())
    #: What conversion jobs write: OME-Zarr (default) or TileDB (MICROTOME_STORE_FORMAT).
    store_format: StoreFormatSettings = field(default_factory=lambda: StoreFormatSettings())
    #: Where the built front-end assets are.
    frontend_dir: Path = Path(__file__).resolve().parent.parent / "frontend"

    @property
    def images_dir(self) -> Path:
        return self.var_dir / "images"

    @property
    def uploads_dir(self) -> Path:
        return self.var_dir / "uploads"


class _Env:
    """Typed, validated reads of one environment mapping."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def text(self, name: str, default: str) -> str:
        return self.environ.get(name) or default

    def int(self, name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
        raw = self.environ.get(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            value = int(raw.strip())
        except ValueError:
            raise SettingsError(name, f"must be an integer, got {raw!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise SettingsError(name, f"must be {bound}, got {value}")
        return value

    def networks(self, name: str) -> tuple[str, ...]:
        """Comma-separated IP addresses or CIDR networks, each checked."""
        import ipaddress

        items = tuple(p.strip() for p in self.environ.get(name, "").split(",") if p.strip())
        for item in items:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise SettingsError(name, f"holds {item!r}, not an IP address or network") \
                    from None
        return items


def _secret(var_dir: Path, env: _Env) -> bytes:
    """MICROTOME_SECRET, else a random key persisted under var/ so restarts keep links valid."""
    given = env.text("MICROTOME_SECRET", "")
    if given:
        if len(given) < 16:
            raise SettingsError("MICROTOME_SECRET", "must be at least 16 characters long")
        return given.encode()
    path = var_dir / "secret.key"
    if path.exists():
        return path.read_bytes()
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    # Written whole under a private name, then linked into place: several processes
    # starting at once on one data directory all end up with the same key (the
    # first link wins; the others read it), never with a half-written file.
    tmp = var_dir / f".secret.key.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return path.read_bytes()
    finally:
        tmp.unlink(missing_ok=True)
    return key


def tile_settings_from_env(environ: Mapping[str, str] | None = None,
                           workers: int = 1) -> TileSettings:
    """The tile section alone (`microtome tiles` has no database or var/ folder).

    With several worker processes on one host the default thread count and
    cache size are shares of the host's; values given in the environment are
    per process, as written.
    """
    env = _Env(os.environ if environ is None else environ)
    return TileSettings(
        threads=env.int("MICROTOME_TILE_THREADS", max(2, _cpus() // max(1, workers)),
                        minimum=1, maximum=1024),
        cache_bytes=env.int("MICROTOME_TILE_CACHE_MB", 256 // max(1, workers),
                            maximum=1 << 20) * 1024**2,
        decoded_cache_bytes=env.int("MICROTOME_DECODED_CACHE_MB", 96, maximum=1 << 20) * 1024**2,
        max_age=env.int("MICROTOME_TILE_MAX_AGE", 3600, maximum=10 * 365 * 86400),
    )


#: Default decompression-bomb limit for plain pictures (JPEG, PNG, WebP...):
#: 2.5 gigapixels (50000 x 50000) converts; a header claiming 100000 x 100000
#: is refused with the reason.
DEFAULT_MAX_IMAGE_PIXELS = 2_500_000_000


def max_image_pixels(environ: Mapping[str, str] | None = None) -> int:
    """MICROTOME_MAX_IMAGE_PIXELS: the largest plain picture (width x height) the
    converters decode.  Asked at conversion time (the CLI, the job workers and
    library callers all convert), so a changed limit needs no restart."""
    env = _Env(os.environ if environ is None else environ)
    return env.int("MICROTOME_MAX_IMAGE_PIXELS", DEFAULT_MAX_IMAGE_PIXELS, minimum=1)


@dataclass(frozen=True)
class GuardSettings:
    """Slow and idle clients (core.netguard): one set for `serve` and `tiles`."""

    idle_timeout_s: float = 15.0
    max_idle_connections: int = 100


def guard_settings_from_env(environ: Mapping[str, str] | None = None) -> GuardSettings:
    env = _Env(os.environ if environ is None else environ)
    return GuardSettings(
        idle_timeout_s=float(env.int("MICROTOME_IDLE_TIMEOUT_S", 15, minimum=1)),
        max_idle_connections=env.int("MICROTOME_MAX_IDLE_CONNECTIONS", 100, minimum=1))


def trusted_proxies_from_env(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """MICROTOME_TRUSTED_PROXIES alone (for `microtome tiles`, which has no Settings)."""
    return _Env(os.environ if environ is None else environ).networks("MICROTOME_TRUSTED_PROXIES")


def tile_urls_from_env(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """MICROTOME_TILE_URLS: comma-separated http(s) base URLs, no query or fragment."""
    from urllib.parse import urlsplit

    env = _Env(os.environ if environ is None else environ)
    raw = env.environ.get("MICROTOME_TILE_URLS", "")
    urls = tuple(u.strip().rstrip("/") for u in raw.split(",") if u.strip())
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query \
                or parts.fragment:
            raise SettingsError("MICROTOME_TILE_URLS",
                                f"holds {url!r}, not an http(s) base URL like https://t1.example.org")
    if len(urls) > 16:
        raise SettingsError("MICROTOME_TILE_URLS", f"lists {len(urls)} URLs; 16 at most")
    return urls


def dask_scheduler_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """MICROTOME_DASK_SCHEDULER: tcp://host:port (or tls://, inproc://) of a dask scheduler."""
    env = _Env(os.environ if environ is None else environ)
    value = env.environ.get("MICROTOME_DASK_SCHEDULER", "").strip()
    if not value:
        return None
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in ("tcp", "tls", "inproc", "ws", "wss") or not rest:
        raise SettingsError("MICROTOME_DASK_SCHEDULER",
                            f"must look like tcp://host:8786, got {value!r}")
    return value


def warn_unknown(environ: Mapping[str, str] | None = None) -> list[str]:
    """Print (and return) MICROTOME_* variables nothing reads: usually a typo."""
    environ = os.environ if environ is None else environ
    unknown = sorted(k for k in environ if k.startswith("MICROTOME_") and k not in KNOWN)
    for name in unknown:
        print(f"warning: {name} is not a Microtome setting (ignored)", file=sys.stderr)
    return unknown


# -- Storage backends (issue 18: images in object storage) ----------------------------
KNOWN |= {"MICROTOME_STORAGE", "MICROTOME_STORAGE_DEADLINE_S"}


@dataclass(frozen=True)
class StorageSettings:
    """Where converted images live when not on the local disk, and how long a remote
    read may keep retrying before the client gets a 503."""

    #: ``s3://bucket/prefix`` (credentials and endpoint: the standard AWS_* variables).
    url: str = ""
    #: Retry budget of one remote request, seconds (exponential backoff inside it).
    deadline_s: float = 10.0


def storage_deadline_from_env(environ: Mapping[str, str] | None = None) -> float:
    """MICROTOME_STORAGE_DEADLINE_S alone (`microtome tiles` / `convert` have no Settings)."""
    env = _Env(os.environ if environ is None else environ)
    return float(env.int("MICROTOME_STORAGE_DEADLINE_S", 10, minimum=1, maximum=600))


def storage_settings_from_env(environ: Mapping[str, str] | None = None
                              ) -> StorageSettings | None:
    """MICROTOME_STORAGE: empty (local images folder) or an ``s3://bucket[/prefix]`` URL."""
    env = _Env(os.environ if environ is None else environ)
    url = env.text("MICROTOME_STORAGE", "").strip().rstrip("/")
    if not url:
        return None
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != "s3":
        raise SettingsError("MICROTOME_STORAGE", f"must be an s3://bucket/prefix URL, got {url!r}")
    if not rest.split("/", 1)[0]:
        raise SettingsError("MICROTOME_STORAGE", "needs a bucket: s3://bucket/prefix")
    return StorageSettings(url=f"s3://{rest}", deadline_s=storage_deadline_from_env(env.environ))


def from_env(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Settings from MICROTOME_* variables and DATABASE_URL; keyword overrides win."""
    env = _Env(os.environ if environ is None else environ)
    var_dir = Path(str(overrides.pop("var_dir", None) or env.text("MICROTOME_VAR", "var")))
    guard = guard_settings_from_env(env.environ)
    values: dict[str, object] = {
        "var_dir": var_dir.resolve(),
        "database_url": env.text("DATABASE_URL", "") or None,
        "host": env.text("MICROTOME_HOST", "127.0.0.1"),
        "port": env.int("MICROTOME_PORT", 8000, minimum=1, maximum=65535),
        "upload_max_bytes": env.int("MICROTOME_UPLOAD_MAX_BYTES", 20 * 1024**3, minimum=1),
        "job_workers": env.int("MICROTOME_JOB_WORKERS", 1, maximum=256),
        "signed_url_default_seconds": env.int("MICROTOME_SIGNED_URL_DEFAULT_SECONDS", 3600,
                                              minimum=60),
        "signed_url_max_seconds": env.int("MICROTOME_SIGNED_URL_MAX_SECONDS", 12 * 3600,
                                          minimum=60),
        "share_link_max_seconds": env.int("MICROTOME_SHARE_LINK_MAX_SECONDS", 365 * 86400,
                                          minimum=60),
        "session_hours": env.int("MICROTOME_SESSION_HOURS", 14 * 24, minimum=1),
        "session_idle_minutes": env.int("MICROTOME_SESSION_IDLE_MINUTES", 24 * 60, minimum=1),
        "metrics_port": env.int("MICROTOME_METRICS_PORT", 0, maximum=65535),
        "trusted_proxies": env.networks("MICROTOME_TRUSTED_PROXIES"),
        "disk_reserve_bytes": env.int("MICROTOME_DISK_RESERVE_MB", 512) * 1024**2,
        "outage_grace_s": float(env.int("MICROTOME_OUTAGE_GRACE_S", 300, maximum=86400)),
        "idle_timeout_s": guard.idle_timeout_s,
        "body_timeout_s": float(env.int("MICROTOME_BODY_TIMEOUT_S", 60, minimum=1)),
        "max_idle_connections": guard.max_idle_connections,
        "tiles": tile_settings_from_env(env.environ),
        "tile_urls": tile_urls_from_env(env.environ),
        "dask_scheduler": dask_scheduler_from_env(env.environ),
        "storage": storage_settings_from_env(env.environ),
        # analysis apps (issue 16)
        "local_workers": env.int("MICROTOME_LOCAL_WORKERS", 1, maximum=64),
        "collab": collab_settings_from_env(env),
        "remote": remote_read_settings_from_env(env.environ),
        "store_format": store_format_from_env(env.environ),
        # Trash: 0 purges at the next run of the purge job (every hour).
        "trash_days": env.int("MICROTOME_TRASH_DAYS", 30, maximum=36500),
        # Retrieval (issue 17)
        "retrieval_index_threads": env.int("MICROTOME_RETRIEVAL_THREADS", 1, maximum=64),
        # --- accounts helper (issue 14) ---
        "reset_link_hours": env.int("MICROTOME_RESET_LINK_HOURS", 72, minimum=1,
                                    maximum=24 * 30),
    }
    values.update(overrides)
    if "secret_key" not in values:
        values["secret_key"] = _secret(Path(str(values["var_dir"])), env)
    return Settings(**values)  # type: ignore[arg-type]


# --- scale (helper scale, issue 18: local disk cache of remote chunks, TileDB on S3) ---
KNOWN |= {"MICROTOME_CHUNK_CACHE_DIR", "MICROTOME_CHUNK_CACHE_MB"}


@dataclass(frozen=True)
class RemoteReadSettings:
    """How this process reads images in object storage, beyond the byte store itself."""

    #: Folder of the shared local disk cache of remote chunks; None = off.
    chunk_cache_dir: Path | None = None
    #: Bound of that folder, bytes (all processes of the host together).
    chunk_cache_bytes: int = 1024 * 1024**2
    #: The S3 endpoint (standard AWS_ENDPOINT_URL) and region (AWS_REGION): TileDB's own
    #: S3 client is told them (obstore reads the AWS variables itself).
    s3_endpoint_url: str | None = None
    s3_region: str | None = None


def remote_read_settings_from_env(environ: Mapping[str, str] | None = None
                                  ) -> RemoteReadSettings:
    """MICROTOME_CHUNK_CACHE_DIR (empty: no disk cache), MICROTOME_CHUNK_CACHE_MB
    (default 1024), and the AWS endpoint/region for TileDB images on S3."""
    env = _Env(os.environ if environ is None else environ)
    folder = env.text("MICROTOME_CHUNK_CACHE_DIR", "").strip()
    if folder and "://" in folder:
        raise SettingsError("MICROTOME_CHUNK_CACHE_DIR", f"must be a local folder, got {folder!r}")
    size_mb = env.int("MICROTOME_CHUNK_CACHE_MB", 1024, minimum=1, maximum=1 << 24)
    endpoint = env.text("AWS_ENDPOINT_URL_S3", "") or env.text("AWS_ENDPOINT_URL", "")
    region = env.text("AWS_REGION", "") or env.text("AWS_DEFAULT_REGION", "")
    return RemoteReadSettings(chunk_cache_dir=Path(folder).resolve() if folder else None,
                              chunk_cache_bytes=size_mb * 1024**2,
                              s3_endpoint_url=endpoint.strip() or None,
                              s3_region=region.strip() or None)


# --- retrieval descriptor family (issue 17) ---------------------------------------------
KNOWN |= {"MICROTOME_RETRIEVAL_DESCRIPTOR"}

#: Descriptor families the server can describe and search with (retrieval.descriptors).
#: Both are 100 values long, the length of the index column; the bag of visual words
#: (retrieval.bovw) is not servable (longer vectors, and no per-project codebook store).
RETRIEVAL_DESCRIPTORS = ("cstats-v1", "cstats-v2")


@dataclass(frozen=True)
class RetrievalDescriptorSettings:
    #: The family every annotation is described and searched with.  Chosen by the
    #: held-out benchmark on hand-labelled tissue (bench/retrieval_eval.py).  After a
    #: change, run `microtome reindex`: until then searches find only the annotations
    #: already described with the new family (and describe up to 32 more per request).
    family: str = "cstats-v1"


def retrieval_descriptor_settings_from_env(environ: Mapping[str, str] | None = None
                                           ) -> RetrievalDescriptorSettings:
    """MICROTOME_RETRIEVAL_DESCRIPTOR: one of RETRIEVAL_DESCRIPTORS (default cstats-v1)."""
    env = _Env(os.environ if environ is None else environ)
    family = env.text("MICROTOME_RETRIEVAL_DESCRIPTOR", "cstats-v1").strip()
    if family not in RETRIEVAL_DESCRIPTORS:
        raise SettingsError("MICROTOME_RETRIEVAL_DESCRIPTOR",
                            f"must be one of {', '.join(RETRIEVAL_DESCRIPTORS)}, got {family!r}")
    return RetrievalDescriptorSettings(family)


# --- store format (issue 18, helper s3cold: conversions by `serve` into TileDB) ------
KNOWN |= {"MICROTOME_STORE_FORMAT"}
#: The formats conversion jobs can write (pyramid/reader.py opens both).
STORE_FORMATS = ("ome-zarr", "tiledb")


@dataclass(frozen=True)
class StoreFormatSettings:
    """The format `serve`'s conversion jobs store images in (bench/RESULTS.md compares them).

    ``ome-zarr``: JPEG chunks in shards, served as tiles without decoding (the default).
    ``tiledb``: the same decoded pixels as TileDB dense arrays (zstd), for sites that
    read their images with TileDB tools; tiles are decoded and re-encoded.
    """

    format: str = "ome-zarr"


def store_format_from_env(environ: Mapping[str, str] | None = None) -> StoreFormatSettings:
    """MICROTOME_STORE_FORMAT: ome-zarr (default) or tiledb (needs the tiledb extra)."""
    import importlib.util

    env = _Env(os.environ if environ is None else environ)
    value = env.text("MICROTOME_STORE_FORMAT", "ome-zarr").strip().lower()
    if value not in STORE_FORMATS:
        raise SettingsError("MICROTOME_STORE_FORMAT",
                            f"must be one of {', '.join(STORE_FORMATS)}, got {value!r}")
    if value == "tiledb" and importlib.util.find_spec("tiledb") is None:
        raise SettingsError("MICROTOME_STORE_FORMAT",
                            "tiledb needs TileDB: pip install 'microtome[tiledb]'")
    return StoreFormatSettings(format=value)
