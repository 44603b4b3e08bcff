"""Results streamed in batches: the objects held at once do not grow with the
number found (counted on the live objects, not trusted from a constant), and a
run that crashes after some batches were imported leaves nothing behind."""

from __future__ import annotations

import gc
import time
from typing import Any

import numpy as np
from microtome_client import Client

from microtome.analysis import Feature, get_app, validate_params
from microtome.analysis.raster import ArrayRaster
from microtome.analysis.runner import Region, run_app, stream_app
from microtome.analysis.worker import process
from tests.analysis.crash_app import CrashApp
from tests.analysis.test_worker import _sql
from tests.client.conftest import LiveServer, live_server, ready_images  # noqa: F401

from .synth import grid_nuclei, he_image

TILE = 256


def periodic_slide(rows: int, cols: int) -> np.ndarray:
    """A tile of 64 well-separated nuclei, repeated."""
    one = he_image((TILE, TILE), grid_nuclei((TILE, TILE), 32, 7.0, 16), seed=3)
    return np.tile(one, (rows, cols, 1))


def live_features() -> int:
    return sum(isinstance(o, Feature) for o in gc.get_objects())


def stream_peak(raster: ArrayRaster, region: Region, batch: int, workers: int
                ) -> tuple[int, int, int]:
    """(objects found, most live Feature objects seen at a batch, largest batch)."""
    app = get_app("nucleus_detection")
    params = validate_params(app.descriptor, {"tile_size": TILE})
    peak = [0, 0]
    count = [0]

    def sink(features: list[Feature]) -> None:
        count[0] += len(features)
        peak[0] = max(peak[0], live_features())
        peak[1] = max(peak[1], len(features))

    gc.collect()
    baseline = live_features()
    prov = stream_app(app, raster, params, sink, region, batch, workers=workers)
    assert prov["count"] == count[0]
    return count[0], peak[0] - baseline, peak[1]


def test_objects_held_at_once_do_not_grow_with_the_slide() -> None:
    raster = ArrayRaster(periodic_slide(1, 16), mpp=0.5)  # 256 x 4096: 16 tiles
    batch, workers = 30, 2
    small_n, small_peak, small_batch = stream_peak(raster, Region(0, 0, 2048, 256),
                                                   batch, workers)
    large_n, large_peak, large_batch = stream_peak(raster, Region(0, 0, 4096, 256),
                                                   batch, workers)
    app = get_app("nucleus_detection")
    gathered, _ = run_app(app, raster, validate_params(app.descriptor, {"tile_size": TILE}),
                          Region(0, 0, 4096, 256), workers=workers)
    assert live_features() >= len(gathered) == large_n  # the gathering run holds all
    assert large_n >= 1.9 * small_n and small_n > 5 * batch
    assert small_batch == large_batch == batch
    # Held at once while streaming: the batch being filled plus the tiles submitted
    # and not yet yielded (iter_tiles: at most 4 per thread) and the one being
    # yielded, whatever the area.
    per_tile = np.bincount([int(f.geometry.centroid.x) // TILE for f in gathered])
    bound = batch + (4 * workers + 1) * int(per_tile.max())
    del gathered
    assert small_peak <= bound and large_peak <= bound, (small_peak, large_peak, bound)
    assert bound < large_n  # so the bound says something: less than all of them


def _queue_crash(server: LiveServer, image_id: int) -> int:
    rows = _sql(server, "INSERT INTO analyses (image_id, app, version) VALUES "
                "($1, 'crash_test', '1.0.0') RETURNING id", image_id)
    return int(rows[0]["id"])


def _tagged(server: LiveServer, aid: int) -> int:
    return int(_sql(server, "SELECT count(*) AS n FROM annotations WHERE producer LIKE $1 "
                    "OR analysis_id = $2", f"analysis:{aid}/%", aid)[0]["n"])


def test_crash_mid_stream_leaves_no_results(live_server: LiveServer,  # noqa: F811
                                            ready_images: dict[str, int]) -> None:  # noqa: F811
    image_id = ready_images["CMU-1-Small-Region.svs"]
    with Client(live_server.url, api_key=live_server.api_key) as c:
        # In the worker's thread: two full batches and a part are on the server
        # when the app raises.
        aid = _queue_crash(live_server, image_id)
        claimed = c.claim_analysis(["crash_test"], worker="test")
        assert claimed.id == aid
        seen: dict[str, Any] = {}
        app = CrashApp(25, hook=lambda: seen.update(mid=_tagged(live_server, aid)))
        status = process(c, claimed, {"crash_test": app}, heartbeat_s=0.5, batch_size=10)
        a = c.analysis(aid)
        assert status == "failed" and a.status == "failed"
        assert "crashed mid-stream" in a.error
        assert "20 objects written in 2 batches before the failure: removed" in a.log
        assert seen["mid"] == 20  # streamed: imported while the app still ran
        assert _tagged(live_server, aid) == 0 and a.result_count is None
        layers = c.image(image_id).layers()
        assert not [la for la in layers if la.get("key") == f"analysis:{aid}"]
        # In a child process that dies without a word after its batches went out.
        aid2 = _queue_crash(live_server, image_id)
        claimed = c.claim_analysis(["crash_test"], worker="test")
        assert claimed.id == aid2
        t0 = time.monotonic()
        status = process(c, claimed, {"crash_test": CrashApp(25, exit_code=3)},
                         heartbeat_s=0.5, batch_size=10,
                         server=(live_server.url, live_server.api_key))
        a = c.analysis(aid2)
        assert status == "failed" and "died" in a.error, (a.error, a.log, time.monotonic() - t0)
        assert "crashing" in a.log  # it got as far as its last batch
        assert "20 objects written in 2 batches before the failure: removed" in a.log
        assert _tagged(live_server, aid2) == 0
