"""Apply the remote-read settings (core.settings.RemoteReadSettings, the ``remote``
section of Settings) to this process: the shared disk cache of remote chunks and
TileDB's S3 endpoint.  Called once at start-up by `microtome tiles` and `serve`."""

from __future__ import annotations

from microtome.pyramid import diskcache, tiledbstore

from .settings import RemoteReadSettings


def configure_remote_reads(settings: RemoteReadSettings) -> None:
    diskcache.configure(settings.chunk_cache_dir, settings.chunk_cache_bytes)
    tiledbstore.configure(settings.s3_endpoint_url, settings.s3_region)
