"""Apply the remote-read settings (core.settings.RemoteReadSettings) to this process:
the shared disk cache of remote chunks and TileDB's S3 endpoint.  Called once at
start-up by `microtome tiles` and `microtome serve`."""

from __future__ import annotations

from collections.abc import Mapping

from microtome.pyramid import diskcache, tiledbstore

from .settings import RemoteReadSettings, remote_read_settings_from_env


def configure_remote_reads(environ: Mapping[str, str] | None = None) -> RemoteReadSettings:
    """Read the settings (bad values exit naming the variable) and apply them."""
    settings = remote_read_settings_from_env(environ)
    diskcache.configure(settings.chunk_cache_dir, settings.chunk_cache_bytes)
    tiledbstore.configure(settings.s3_endpoint_url, settings.s3_region)
    return settings
