"""A real slide (CMU-1-Small-Region.svs) converted by our converter, served by the tile server."""

from __future__ import annotations

from pathlib import Path

import imagecodecs
import numpy as np
import openslide
import pytest
from aiohttp.test_utils import TestClient

from microtome.converters.convert import convert
from microtome.tileserver.tilemath import dzi_max_level


@pytest.fixture(scope="module")
def cmu_root(tmp_path_factory: pytest.TempPathFactory, testdata: Path) -> Path:
    root = tmp_path_factory.mktemp("cmu")
    convert(testdata / "CMU-1-Small-Region.svs", root / "cmu.ome.zarr")
    return root


@pytest.fixture
async def cmu_client(aiohttp_client, cmu_root: Path) -> TestClient:  # type: ignore[no-untyped-def]
    from microtome.tileserver.app import TileSettings, create_tiles_app

    return await aiohttp_client(create_tiles_app(cmu_root, TileSettings(threads=2)))


def _decode(body: bytes) -> np.ndarray:
    return np.asarray(imagecodecs.imread(body))


async def test_dzi_and_iiif_agree_and_match_the_source(cmu_client: TestClient,
                                                       testdata: Path) -> None:
    slide = openslide.OpenSlide(str(testdata / "CMU-1-Small-Region.svs"))
    w, h = slide.dimensions
    r = await cmu_client.get("/iiif/3/cmu/info.json")
    info = await r.json(content_type=None)
    assert (info["width"], info["height"]) == (w, h) == (2220, 2967)
    top = dzi_max_level(w, h)
    # Full resolution: the same stored chunk through both protocols.
    dzi = await (await cmu_client.get(f"/dzi/cmu_files/{top}/2_3.jpg")).read()
    iiif = await (await cmu_client.get("/iiif/3/cmu/512,768,256,256/256,256/0/default.jpg")).read()
    assert dzi == iiif
    source = np.asarray(slide.read_region((512, 768), 0, (256, 256)).convert("RGB"))
    assert np.abs(_decode(dzi).astype(int) - source).mean() < 4
    # Half resolution, and an edge tile (cropped, re-encoded) at full resolution.
    dzi = await (await cmu_client.get(f"/dzi/cmu_files/{top - 1}/1_1.jpg")).read()
    iiif = await (await cmu_client.get("/iiif/3/cmu/512,512,512,512/256,256/0/default.jpg")).read()
    assert dzi == iiif
    edge = _decode(await (await cmu_client.get(f"/dzi/cmu_files/{top}/8_11.png")).read())
    assert edge.shape == (2967 - 11 * 256, 2220 - 8 * 256, 3)
    source = np.asarray(slide.read_region((2048, 2816), 0, (172, 151)).convert("RGB"))
    assert np.abs(edge.astype(int) - source).mean() < 4


async def test_associated_and_metadata(cmu_client: TestClient) -> None:
    doc = await (await cmu_client.get("/images/cmu/metadata")).json()
    assert doc["pixel_size_um"] == [0.499, 0.499]
    assert {"label", "macro", "thumbnail"} <= set(doc["associated"])
    for name in doc["associated"]:
        r = await cmu_client.get(f"/images/cmu/associated/{name}.jpg")
        assert r.status == 200 and _decode(await r.read()).ndim == 3
    r = await cmu_client.get("/images/cmu/thumbnail.jpg?size=300")
    assert _decode(await r.read()).shape == (300, 224, 3)
