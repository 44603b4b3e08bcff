"""Annotations through the client: shapely/GeoJSON in, paged queries, GeoJSON out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import shapely
from microtome_client import Unprocessable
from shapely.geometry import Point, box

from tests.client.conftest import PASSWORD, CuttingProxy, LiveServer, unique


@pytest.fixture
def setup(client: Any, ready_images: dict[str, int]) -> tuple[Any, Any, Any]:
    """A fresh project holding the SVS image, with two terms."""
    project = client.create_project(unique("annot"))
    image = project.add_image(ready_images["CMU-1-Small-Region.svs"])
    image = client.image(image.id)
    return project, image, (project.create_term("tumour"), project.create_term("stroma"))


def test_create_query_update_delete(client: Any, setup: tuple[Any, Any, Any]) -> None:
    project, image, (tumour, stroma) = setup
    one = image.create_annotation(box(100, 100, 200, 150), terms=[tumour],
                                  data={"score": 0.9}, project=project.id)
    assert one.terms == [tumour.id] and one.data == {"score": 0.9}
    assert shapely.equals(one.shape, box(100, 100, 200, 150))
    feature = {"type": "Feature", "geometry": Point(500, 500).buffer(20).__geo_interface__,
               "properties": {"terms": [stroma.id], "data": {"kind": "cell"}}}
    two = image.create_annotation(feature, project=project.id)
    assert two.terms == [stroma.id] and two.data == {"kind": "cell"}

    cells = [Point(1000 + 30 * i, 1200).buffer(10) for i in range(25)]
    ids = image.create_annotations(cells, terms=[stroma.id], project=project.id, batch_size=10)
    assert len(ids) == 25 and len(set(ids)) == 25

    everything = image.annotations(page_size=7, project=project.id)
    got = list(everything)
    assert {a.id for a in got} == {one.id, two.id, *ids}
    assert everything.count() == 27
    in_box = {a.id for a in image.annotations(bbox=(0, 0, 300, 300),
                                                  project=project.id)}
    assert in_box == {one.id}
    by_term = {a.id for a in image.annotations(terms=[stroma.id], page_size=5,
                                                   project=project.id)}
    assert by_term == {two.id, *ids}
    me = client.me()
    assert len(list(image.annotations(users=[me.id], project=project.id))) == 27

    fc = image.annotations(terms=[tumour.id], project=project.id).to_geojson()  # one page
    assert fc["type"] == "FeatureCollection" and [f["id"] for f in fc["features"]] == [one.id]
    gdf = image.annotations(page_size=10, project=project.id).to_geodataframe()
    assert len(gdf) == 27 and set(gdf.columns) >= {"id", "terms", "geometry"}
    assert gdf.geometry.area.sum() == pytest.approx(
        sum(a.shape.area for a in got), rel=1e-6)

    hits = image.search_annotations(box(990, 1150, 1100, 1250), project=project.id)
    assert {a.id for a in hits} <= set(ids) and len(hits) == 4

    moved = one.update(box(110, 110, 220, 160), terms=[stroma.id])
    assert moved.terms == [stroma.id] and shapely.equals(moved.shape, box(110, 110, 220, 160))
    assert client.annotation(one.id).data == {"score": 0.9}  # data kept
    assert one.update(terms=[]).terms == []  # an explicit empty list clears them
    one.delete()
    assert image.delete_annotations(ids[:10]) == 10
    assert image.annotation_counts(project=project.id)["total"] == 16
    stats = image.annotation_stats(project=project.id)
    assert sum(t["count"] for t in stats["terms"]) == 16


def test_bad_geometry_and_bad_batch_store_nothing(setup: tuple[Any, Any, Any]) -> None:
    project, image, _ = setup
    with pytest.raises(Unprocessable) as exc:
        image.create_annotations([box(0, 0, 10, 10), box(5000, 5000, 6000, 6000)],
                                 project=project.id)
    assert exc.value.status == 422 and exc.value.detail["index"] == 1
    assert image.annotations(project=project.id).count() == 0
    with pytest.raises(TypeError):
        image.create_annotation("POLYGON((0 0, 1 0, 1 1, 0 0))", project=project.id)


def test_export_then_import_qupath_geojson(client: Any, setup: tuple[Any, Any, Any],
                                           tmp_path: Path) -> None:
    project, image, (tumour, _) = setup
    image.create_annotations([box(10 * i, 10, 10 * i + 8, 18) for i in range(30)],
                             terms=[tumour], project=project.id)
    out = image.export_annotations(tmp_path / "a.geojson", project=project.id)
    doc = json.loads(out.read_text())
    assert len(doc["features"]) == 30
    assert doc["features"][0]["properties"]["classification"]["name"] == "tumour"

    other = client.create_project(unique("copy"))
    target = client.image(other.add_image(image.id).id)
    result = target.import_annotations(out, project=other.id)
    assert result["imported"] == 30 and result["terms_created"] == ["tumour"]
    assert target.annotations(project=other.id).count() == 30

    # One broken feature: the whole import is refused and nothing is stored.
    doc["features"][17]["geometry"] = {"type": "Polygon", "coordinates": [[[0, 0]]]}
    bad = tmp_path / "bad.geojson"
    bad.write_text(json.dumps(doc))
    third = client.create_project(unique("third"))
    third.add_image(image.id)
    with pytest.raises(Unprocessable) as exc:
        target.import_annotations(bad, project=third.id)
    assert "17" in str(exc.value)
    assert target.annotations(project=third.id).count() == 0


def test_a_viewer_cannot_annotate(client: Any, live_server: LiveServer,
                                  setup: tuple[Any, Any, Any]) -> None:
    from microtome_client import Client, Forbidden

    project, image, _ = setup
    name = unique("viewer")
    client.create_user(name, PASSWORD)
    project.add_member(name, "viewer")
    with Client(live_server.url, username=name, password=PASSWORD) as viewer:
        mine = viewer.image(image.id)
        assert mine.annotations(project=project.id).count() == 0
        with pytest.raises(Forbidden):
            mine.create_annotation(box(0, 0, 5, 5), project=project.id)


def test_import_cut_off_midway_stores_nothing(client: Any, live_server: LiveServer,
                                              setup: tuple[Any, Any, Any],
                                              tmp_path: Path) -> None:
    """Ctrl-C (or a dead network) while the file is on its way: the server's import is
    all or nothing, and the client never sends a POST twice."""
    from microtome_client import Client, ConnectionFailed

    project, image, _ = setup
    features = [{"type": "Feature", "properties": {"classification": {"name": "cell"}},
                 "geometry": box(5 + (i % 200) * 10, 5 + (i // 200) * 10,
                                 12 + (i % 200) * 10, 12 + (i // 200) * 10).__geo_interface__}
                for i in range(20_000)]
    path = tmp_path / "cells.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    assert path.stat().st_size > 3_000_000
    port = int(live_server.url.rsplit(":", 1)[1])
    proxy = CuttingProxy(port, cut_after=1_000_000)
    try:
        with Client(f"http://127.0.0.1:{proxy.port}", api_key=live_server.api_key) as c, \
                pytest.raises(ConnectionFailed):
            c.image(image.id).import_annotations(path, project=project.id)
    finally:
        proxy.close()
    assert proxy.cuts == 1
    assert image.annotations(project=project.id).count() == 0
    assert "cell" not in {t.name for t in project.terms()}
