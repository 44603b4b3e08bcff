"""The client's analysis surface against a live server: apps, analyse, read, cancel, delete."""

from __future__ import annotations

import pytest
from microtome_client import BadRequest, Client, NotFound

from tests.client.conftest import LiveServer


def test_apps_and_an_analysis_lifecycle(live_server: LiveServer,
                                        ready_images: dict[str, int]) -> None:
    with Client(live_server.url, api_key=live_server.api_key) as c:
        apps = {a.name: a for a in c.apps()}
        assert "nucleus_detection" in apps
        assert "threshold" in apps["nucleus_detection"].params_schema["properties"]
        image = c.image(ready_images["CMU-1-Small-Region.svs"])
        a = image.analyse("tissue_detection", {"min_area": 1000}, region=(0, 0, 500, 400))
        assert a.status == "queued" and a.params["min_area"] == 1000
        assert a.region == {"x": 0, "y": 0, "w": 500, "h": 400}
        assert c.analysis(a.id).app == "tissue_detection"
        assert a.id in [x.id for x in image.analyses()]
        assert a.values("area_um2") == {}  # queued: no results to colour by yet
        with pytest.raises(BadRequest):
            a.values("")
        assert a.cancel().status == "cancelled"
        a.delete()
        with pytest.raises(NotFound):
            c.analysis(a.id)
        with pytest.raises(BadRequest) as e:
            image.analyse("tissue_detection", {"smoothing": -1, "nope": True})
        assert set(e.value.detail["fields"]) == {"smoothing", "nope"}
