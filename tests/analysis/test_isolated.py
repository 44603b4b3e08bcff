"""Apps run in a child process the worker can kill: a hung app is failed
"timed out after N s" and leaves no process behind; deleting the image while
an analysis runs stops it cleanly (no results, no analysis left)."""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from microtome_client import Client, NotFound

from microtome.analysis.worker import process
from tests.analysis.hang_app import HangApp
from tests.analysis.test_worker import _sql
from tests.client.conftest import LiveServer, live_server, ready_images  # noqa: F401


def _queue(server: LiveServer, image_id: int) -> int:
    rows = _sql(server, "INSERT INTO analyses (image_id, app, version) VALUES "
                "($1, 'hang_test', '1.0.0') RETURNING id", image_id)
    return int(rows[0]["id"])



def _app_children() -> list[multiprocessing.Process]:
    """Live app processes (other tests in this worker may keep a parse pool alive)."""
    return [p for p in multiprocessing.active_children() if p.name.startswith("microtome-app-")]

def test_hung_app_is_killed_at_its_timeout(live_server: LiveServer,  # noqa: F811
                                           ready_images: dict[str, int]) -> None:  # noqa: F811
    aid = _queue(live_server, ready_images["CMU-1-Small-Region.svs"])
    with Client(live_server.url, api_key=live_server.api_key) as c:
        claimed = c.claim_analysis(["hang_test"], worker="test")
        assert claimed.id == aid
        t0 = time.monotonic()
        status = process(c, claimed, {"hang_test": HangApp(timeout=4)}, heartbeat_s=0.5,
                         server=(live_server.url, live_server.api_key))
        elapsed = time.monotonic() - t0
        a = c.analysis(aid)
    assert status == "failed" and a.status == "failed"
    assert a.error == "timed out after 4 s"
    assert "hanging" in a.log  # the child's log lines reached the server
    assert 4 <= elapsed < 60  # the app's 4 s, after the child's start-up
    assert not _app_children()  # the hung process is gone


def test_deleting_the_image_stops_its_running_analysis(
        live_server: LiveServer, tmp_path: Path) -> None:  # noqa: F811
    from PIL import Image

    src = tmp_path / "doomed.jpg"
    rgb = np.random.default_rng(1).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(src, quality=90)
    with Client(live_server.url, api_key=live_server.api_key) as c:
        project = c.create_project(f"doomed-{time.time_ns()}")
        [res] = c.upload([src], project=project.id, progress=False,
                         state_file=tmp_path / "state.json")
        assert res.ok, res.error
        aid = _queue(live_server, res.image.id)
        claimed = c.claim_analysis(["hang_test"], worker="test")
        assert claimed.id == aid
        out: dict[str, Any] = {}
        run = threading.Thread(target=lambda: out.update(status=process(
            c, claimed, {"hang_test": HangApp()}, heartbeat_s=0.5,
            server=(live_server.url, live_server.api_key))))
        run.start()
        deadline = time.monotonic() + 60
        while "hanging" not in c.analysis(aid).log:  # the child runs (and hangs)
            assert time.monotonic() < deadline, f"the app never started: {c.analysis(aid)}"
            time.sleep(0.3)
        c.image(res.image.id).delete()
        run.join(30)
        assert not run.is_alive(), "the worker did not stop"
        assert out["status"] == "gone"
        try:
            c.analysis(aid)
            raise AssertionError("the analysis outlived its image")
        except NotFound:
            pass
    assert not _app_children()
    assert _sql(live_server, "SELECT count(*) AS n FROM annotations WHERE producer LIKE $1",
                f"analysis:{aid}/%")[0]["n"] == 0
