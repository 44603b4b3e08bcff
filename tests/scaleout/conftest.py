"""The scale-out world, started once for this folder: a throwaway PostgreSQL, two
`serve` and two `tiles` processes, HAProxy in front (tests/scaleout/cluster.py)."""

from __future__ import annotations

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

PASSWORD = "correct horse battery staple"


class World:
    def __init__(self, pg: TempPostgres, serve: list[Proc], tiles: list[Proc],
                 lb: Balancer, var: Path) -> None:
        self.pg, self.serve, self.tiles, self.lb, self.var = pg, serve, tiles, lb, var
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
def world(tmp_path_factory: pytest.TempPathFactory, small_pyramid_folder: Path) -> Iterator[World]:
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
        tiles = [tiles_proc("tiles1", small_pyramid_folder, work, threads=2),
                 tiles_proc("tiles2", small_pyramid_folder, work, threads=2)]
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
        yield World(pg, serve, tiles, lb, var)
    finally:
        if lb is not None:
            lb.stop()
        for p in procs:
            p.stop()
        pg.stop()


@pytest.fixture(scope="session")
def small_pyramid_folder(tmp_path_factory: pytest.TempPathFactory, testdata: Path) -> Path:
    from microtome.converters import ConvertOptions, convert

    root = tmp_path_factory.mktemp("tiles-root")
    convert(testdata / "CMU-1-Small-Region.svs", root / "cmu.ome.zarr", ConvertOptions())
    return root


