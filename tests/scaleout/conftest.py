"""The scale-out world, started once for this folder: a throwaway PostgreSQL, two
`serve` and two `tiles` processes, HAProxy in front (tests/scaleout/cluster.py).

The `tiles` processes serve straight from S3: the session's moto server
(``s3``, tests/conftest.py) holds the slide, converted into it by
``microtome convert -o s3://...``; no local copy exists."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.scaleout.cluster import (
    Balancer,
    Proc,
    TempPostgres,
    ensure_haproxy,
    free_port,
    serve_proc,
    tiles_proc,
    wait_http,
)
from tests.storage.s3server import S3Server

PASSWORD = "correct horse battery staple"


class World:
    def __init__(self, pg: TempPostgres, serve: list[Proc], tiles: list[Proc],
                 lb: Balancer, var: Path) -> None:
        self.pg, self.serve, self.tiles, self.lb, self.var = pg, serve, tiles, lb, var
        #: Where the `tiles` processes read images (``s3://bucket/prefix``).
        self.tiles_root = ""
        #: The slide uploaded through the balancer (set by the upload test).
        self.image_id: int | None = None

    @property
    def app(self) -> str:
        return f"http://127.0.0.1:{self.lb.app_port}"

    @property
    def tile_url(self) -> str:
        return f"http://127.0.0.1:{self.lb.tiles_port}"

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail()}" for p in (*self.serve, *self.tiles))


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory, s3: S3Server,
          s3_slides: str) -> Iterator[World]:
    binary = ensure_haproxy()
    work = tmp_path_factory.mktemp("lb")
    var = work / "var"
    pg = TempPostgres()
    procs: list[Proc] = []
    lb: Balancer | None = None
    try:
        app_port, tiles_port = free_port(), free_port()
        # Domain sharding on: two host names of the same balancer (viewer/shard.js).
        shards = {"MICROTOME_TILE_URLS": f"http://127.0.0.1:{app_port},"
                                         f"http://localhost:{app_port}"}
        # One conversion worker (on the first server): jobs are leased in PostgreSQL.
        serve = [serve_proc("serve1", var, pg.url, work, job_workers=1, extra_env=shards),
                 serve_proc("serve2", var, pg.url, work, extra_env=shards)]
        tiles = [tiles_proc("tiles1", s3_slides, work, threads=2, extra_env=s3.env),
                 tiles_proc("tiles2", s3_slides, work, threads=2, extra_env=s3.env)]
        # The first server migrates the fresh database; then the others start.
        serve[0].start()
        procs.append(serve[0])
        wait_http(f"http://127.0.0.1:{serve[0].port}/api/openapi.json", 120)
        for p in (serve[1], *tiles):
            p.start()
            procs.append(p)
        for p in (serve[1], *tiles):
            wait_http(f"http://127.0.0.1:{p.port}/"
                      + ("api/openapi.json" if p.name.startswith("serve") else "metrics"), 120)
        lb = Balancer.write(binary, work, serve, tiles, app_port, tiles_port)
        lb.start()
        wait_http(f"http://127.0.0.1:{lb.app_port}/api/openapi.json", 30)
        world = World(pg, serve, tiles, lb, var)
        world.tiles_root = s3_slides
        yield world
    finally:
        if lb is not None:
            lb.stop()
        for p in procs:
            p.stop()
        pg.stop()


@pytest.fixture(scope="session")
def s3_slides(testdata: Path, s3: S3Server) -> str:
    """``s3://scaleout/slides``, holding cmu.ome.zarr converted straight into S3 by the CLI."""
    s3.create_bucket("scaleout")
    root = "s3://scaleout/slides"
    done = subprocess.run([sys.executable, "-m", "microtome", "convert",
                           str(testdata / "CMU-1-Small-Region.svs"), "-o", f"{root}/cmu.ome.zarr"],
                          env={**os.environ, **s3.env}, capture_output=True, text=True,
                          timeout=180, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return root
