"""Multi-dimensional rendering, thumbnails, associated images, metadata and /metrics."""

from __future__ import annotations

from pathlib import Path

import imagecodecs
import numpy as np
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from microtome.pyramid.layout import Channel

from .conftest import build_nd


def _decode(body: bytes) -> np.ndarray:
    return np.asarray(imagecodecs.imread(body))


def _expected(planes: list[np.ndarray], windows: list[tuple[float, float]],
              colors: list[tuple[int, int, int]], gammas: list[float] | None = None) -> np.ndarray:
    acc = np.zeros((*planes[0].shape, 3))
    for i, p in enumerate(planes):
        v = np.clip((p.astype(float) - windows[i][0]) / (windows[i][1] - windows[i][0]), 0, 1)
        if gammas:
            v = v ** (1 / gammas[i])
        acc += v[..., None] * np.asarray(colors[i], float)
    return np.clip(acc, 0, 255)


async def test_nd_plane_channel_window_color(client: TestClient, nd_image: tuple) -> None:
    data, _ = nd_image
    r = await client.get("/dzi/fluo_files/8/1_1.png?channels=1&windows=0:4000&colors=00FF00"
                         "&z=2&t=1")
    assert r.status == 200
    got = _decode(await r.read()).astype(float)
    expect = _expected([data[1, 1, 2, 64:128, 64:128]], [(0, 4000)], [(0, 255, 0)])
    assert got.shape == (64, 64, 3) and np.abs(got - expect).max() <= 1


async def test_nd_defaults_from_omero_block(client: TestClient, nd_image: tuple) -> None:
    data, _ = nd_image
    r = await client.get("/dzi/fluo_files/8/0_0.png")
    got = _decode(await r.read()).astype(float)
    # Active channels 0 (blue) and 1 (green); RFP is inactive; middle z (1), t 0.
    expect = _expected([data[0, 0, 1, :64, :64], data[0, 1, 1, :64, :64]],
                       [(0, 4000), (0, 4000)], [(0, 0, 255), (0, 255, 0)])
    assert np.abs(got - expect).max() <= 1


async def test_nd_gamma_additive_and_iiif(client: TestClient, nd_image: tuple) -> None:
    data, _ = nd_image
    q = "channels=0,2&windows=100:3000,0:2000&colors=FF0000,FF8000&gamma=2,0.5"
    r = await client.get(f"/iiif/3/fluo/0,0,64,64/max/0/default.png?{q}")
    assert r.status == 200
    got = _decode(await r.read()).astype(float)
    expect = _expected([data[0, 0, 1, :64, :64], data[0, 2, 1, :64, :64]],
                       [(100, 3000), (0, 2000)], [(255, 0, 0), (255, 128, 0)], [2.0, 0.5])
    assert np.abs(got - expect).max() <= 1
    # Different rendering, different ETag and different pixels.
    r2 = await client.get("/iiif/3/fluo/0,0,64,64/max/0/default.png?channels=0")
    assert r2.headers["ETag"] != r.headers["ETag"]


async def test_float_and_16bit_render_through_windows(client: TestClient,
                                                      tiles_root: Path) -> None:
    rng = np.random.default_rng(2)
    data = rng.random((1, 1, 1, 80, 90), dtype=np.float32) * 2 - 0.5
    build_nd(tiles_root / "float.ome.zarr", data,
             channels=(Channel("x", "FFFFFF", 0.0, 1.0, -0.5, 1.5),))
    r = await client.get("/iiif/3/float/full/max/0/default.png")
    got = _decode(await r.read()).astype(float)
    expect = _expected([data[0, 0, 0]], [(0.0, 1.0)], [(255, 255, 255)])
    assert got.shape == (80, 90, 3) and np.abs(got - expect).max() <= 1


async def test_thumbnail_from_the_right_level(client: TestClient, rgb_image: tuple,
                                              nd_image: tuple) -> None:
    _img, _ = rgb_image
    r = await client.get("/images/slide/thumbnail.jpg?size=200")
    assert r.status == 200 and r.headers["Content-Type"] == "image/jpeg"
    thumb = _decode(await r.read())
    assert thumb.shape == (140, 200, 3)
    r = await client.get("/images/slide/thumbnail.png")
    assert _decode(await r.read()).shape == (179, 256, 3)
    r = await client.get("/images/slide/thumbnail.webp?size=2000")  # never upscaled
    assert _decode(await r.read()).shape == (700, 1000, 3)
    r = await client.get("/images/fluo/thumbnail.png?size=100&channels=0")
    assert _decode(await r.read()).shape == (75, 100, 3)


async def test_associated_images(client: TestClient, rgb_image: tuple) -> None:
    r = await client.get("/images/slide/associated/label.png")
    assert r.status == 200
    label = _decode(await r.read())
    assert label.shape == (40, 60, 3) and (label == 200).all()
    r = await client.get("/images/slide/associated/label.jpg")
    assert r.headers["Content-Type"] == "image/jpeg"
    assert np.abs(_decode(await r.read()).astype(int) - 200).max() < 4


async def test_metadata(client: TestClient, rgb_image: tuple, nd_image: tuple) -> None:
    r = await client.get("/images/slide/metadata")
    doc = await r.json()
    assert (doc["width"], doc["height"], doc["kind"]) == (1000, 700, "rgb")
    assert doc["pixel_size_um"] == [0.25, 0.25] and doc["associated"] == ["label"]
    assert [lv["downsample"] for lv in doc["levels"]] == [1, 2, 4]
    assert doc["original"] == {"vendor": "test", "objective": 20}
    r = await client.get("/images/fluo/metadata")
    doc = await r.json()
    assert doc["size"] == {"t": 2, "c": 3, "z": 3} and doc["dtype"] == "uint16"
    assert [c["label"] for c in doc["channels"]] == ["DAPI", "GFP", "RFP"]


async def test_metrics(client: TestClient, rgb_image: tuple) -> None:
    for _ in range(2):
        await client.get("/dzi/slide_files/10/0_0.jpg")
    await client.get("/dzi/slide_files/10/99_0.jpg")
    text = await (await client.get("/metrics")).text()
    # Parsed with Prometheus' own text parser: the exposition must be valid, not just look so.
    samples = {(smp.name, tuple(sorted((k, v) for k, v in smp.labels.items() if k != "pid"))):
               smp.value for fam in text_string_to_metric_families(text) for smp in fam.samples}
    assert samples[("microtome_tile_requests_total",
                    (("route", "dzi_tile"), ("status", "200")))] == 2
    assert samples[("microtome_tile_requests_total",
                    (("route", "dzi_tile"), ("status", "404")))] == 1
    assert samples[("microtome_tile_cache_hits_total", ())] == 1
    assert samples[("microtome_tile_passthrough_total", ())] == 1
    assert samples[("microtome_tile_request_seconds_bucket",
                    (("le", "+Inf"), ("route", "dzi_tile")))] == 3
    assert samples[("microtome_tile_cache_entries", ())] >= 1


async def test_metadata_version_makes_tile_urls_immutable(client: TestClient,
                                                          rgb_image: tuple) -> None:
    version = (await (await client.get("/images/slide/metadata")).json())["version"]
    r = await client.get(f"/dzi/slide_files/10/0_0.jpg?v={version}")
    assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    r = await client.get("/dzi/slide_files/10/0_0.jpg?v=stale")
    assert "immutable" not in r.headers["Cache-Control"]
