"""One request model, one pipeline: same pixels → same key and ETag whatever the protocol;
parameters that do not change the pixels change nothing; every image validates them."""

from __future__ import annotations

import random
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient

from microtome.tileserver import routes_dzi
from microtome.tileserver.keys import SERVICE


async def _get(client: TestClient, url: str, **kw: object) -> tuple[int, str, bytes]:
    r = await client.get(url, **kw)  # type: ignore[arg-type]
    return r.status, r.headers.get("ETag", ""), await r.read()


# (DZI tile, the IIIF region that is the same tile) on the 1000x700 'slide', tile 256.
SAME_PIXELS = [
    ("/dzi/slide_files/10/1_1.jpg", "256,256,256,256/256,256/0/default.jpg"),  # pass-through
    ("/dzi/slide_files/10/3_2.jpg", "768,512,232,188/232,188/0/default.jpg"),  # edge: rendered
    ("/dzi/slide_files/9/1_1.jpeg", "512,512,488,188/244,94/0/color.jpg"),
    ("/dzi/slide_files/8/0_0.png", "full/250,175/0/default.png"),
    ("/dzi/slide_files/6/0_0.webp", "full/63,44/0/default.webp"),  # finer than any level
]


@pytest.mark.parametrize(("dzi", "iiif"), SAME_PIXELS)
async def test_same_pixels_same_etag_whatever_the_protocol(
        client: TestClient, rgb_image: tuple, dzi: str, iiif: str) -> None:
    s1, etag, body = await _get(client, dzi)
    assert s1 == 200 and etag
    for version in ("3", "2"):
        s2, etag2, body2 = await _get(client, f"/iiif/{version}/slide/{iiif}")
        assert (s2, etag2, body2) == (200, etag, body), version
    # One entry in the tile cache for all of them.
    assert len(client.app[SERVICE].tiles) == 1
    # The DZI ETag validates the IIIF URL (and the other way round).
    r = await client.get(f"/iiif/3/slide/{iiif}", headers={"If-None-Match": etag})
    assert r.status == 304


async def test_thumbnail_is_the_iiif_size_it_equals(client: TestClient, rgb_image: tuple) -> None:
    s1, etag, body = await _get(client, "/images/slide/thumbnail.png?size=200")
    s2, etag2, body2 = await _get(client, "/iiif/3/slide/full/200,140/0/default.png")
    assert s1 == s2 == 200 and (etag, body) == (etag2, body2)


async def test_unused_parameters_do_not_grow_the_cache(client: TestClient, rgb_image: tuple,
                                                       nd_image: tuple) -> None:
    """Anyone could otherwise flush the tile cache with ?windows=<random> on an RGB slide."""
    svc = client.app[SERVICE]
    rng = random.Random(7)
    etags = set()
    for _ in range(25):
        lo = rng.uniform(0, 100)
        windows = f"{lo:.6f}:{lo + rng.uniform(1, 100):.6f}"
        junk = quote(f"{rng.random()}")
        for url in (f"/dzi/slide_files/10/3_2.jpg?channels=1&windows={windows}&junk={junk}",
                    f"/dzi/slide_files/10/3_2.jpg?channels={rng.randrange(3)}&z=0&t=0",
                    f"/iiif/3/slide/768,512,232,188/232,188/0/default.jpg?gamma=1&junk={junk}"):
            status, etag, _ = await _get(client, url)
            assert status == 200
            etags.add(etag)
    assert len(etags) == 1 and len(svc.tiles) == 1
    # gamma is an RGB filter (tileserver/filters.py), rounded to 0.01: random
    # spellings of one value share one tile.
    gammas = {(await _get(client, f"/dzi/slide_files/10/3_2.jpg?gamma={g}"))[1]
              for g in ("0.8", "0.800001", "0.7999", "0.80")}
    assert len(gammas) == 1 and etags.isdisjoint(gammas) and len(svc.tiles) == 2
    # On a multi-channel image, spelling the defaults differently is the same pixels too.
    tags = {(await _get(client, f"/dzi/fluo_files/8/1_1.png{q}"))[1]
            for q in ("", "?gamma=1", "?gamma=1.0,1", "?t=0&z=1", "?channels=0,1&junk=x",
                      "?colors=0000FF,00FF00")}
    assert len(tags) == 1 and len(svc.tiles) == 3
    # ...while a parameter that changes the pixels changes the key.
    assert (await _get(client, "/dzi/fluo_files/8/1_1.png?gamma=2"))[1] not in tags


BAD_RENDER = ["gamma=abc", "channels=99", "gamma=0", "windows=1:0", "colors=GG0000", "t=5",
              "z=9", "channels=0&colors=FF0000,00FF00"]


@pytest.mark.parametrize("query", BAD_RENDER)
async def test_bad_render_parameters_are_400_on_every_image(
        client: TestClient, rgb_image: tuple, nd_image: tuple, query: str) -> None:
    for image, tile in (("slide", "10/0_0"), ("fluo", "8/0_0")):
        for url in (f"/dzi/{image}_files/{tile}.jpg", f"/dzi/{image}.dzi",
                    f"/iiif/3/{image}/full/max/0/default.jpg", f"/iiif/3/{image}/info.json",
                    f"/images/{image}/thumbnail.jpg"):
            r = await client.get(f"{url}?{query}")
            assert r.status == 400, (url, query)
            body = await r.json()
            assert body["error"] and body["detail"]["parameter"] in query, (url, body)


async def test_304_of_an_uncached_tile_parses_once(client: TestClient, nd_image: tuple,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    url = "/dzi/fluo_files/8/1_1.png?channels=1&gamma=0.5"
    _, etag, _ = await _get(client, url)
    svc = client.app[SERVICE]
    svc.tiles.clear()
    calls = []
    parse_render = routes_dzi.parse_render

    def counting(*args: object) -> object:
        calls.append(args)
        return parse_render(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(routes_dzi, "parse_render", counting)
    r = await client.get(url, headers={"If-None-Match": etag})
    assert r.status == 304 and len(calls) == 1 and len(svc.tiles) == 0
    # Still validated before the 304: a bad parameter or a tile outside the image is no 304.
    r = await client.get(url.replace("0.5", "x"), headers={"If-None-Match": "*"})
    assert r.status == 400
    r = await client.get("/dzi/fluo_files/8/9_9.png", headers={"If-None-Match": "*"})
    assert r.status == 404


async def test_info_json_carries_render_parameters_in_its_id(client: TestClient,
                                                            rgb_image: tuple,
                                                            nd_image: tuple) -> None:
    q = "channels=1&colors=00FF00"
    for version, id_key in (("3", "id"), ("2", "@id")):
        info = await (await client.get(f"/iiif/{version}/fluo/info.json?{q}")).json(
            content_type=None)
        base = info[id_key]
        assert base.endswith(f"/iiif/{version}/fluo/{q}")
        # A viewer appends the image parameters to the id: the choice holds on every tile.
        path = base.split(str(client.port), 1)[1]
        s1, etag, body = await _get(client, f"{path}/0,0,64,64/64,64/0/default.png")
        s2, etag2, body2 = await _get(client, f"/iiif/{version}/fluo/0,0,64,64/64,64/0/"
                                              f"default.png?{q}")
        s3, etag3, _ = await _get(client, f"/iiif/{version}/fluo/0,0,64,64/64,64/0/default.png")
        assert s1 == s2 == s3 == 200 and (etag, body) == (etag2, body2) and etag3 != etag
        # The id's own info.json keeps the id; its base URI redirects there.
        again = await (await client.get(f"{path}/info.json")).json(content_type=None)
        assert again[id_key] == base
        r = await client.get(path, allow_redirects=False)
        assert r.status == 303 and r.headers["Location"] == f"{base}/info.json"
    # RGB images: the parameters do not apply, so the id stays plain.
    info = await (await client.get(f"/iiif/3/slide/info.json?{q}")).json(content_type=None)
    assert info["id"].endswith("/iiif/3/slide")
    # A segment that is no rendering parameters names nothing; bad values are a 400.
    for url in ("/iiif/3/fluo/bogus/info.json", "/iiif/3/fluo/size=3/full/max/0/default.jpg",
                "/iiif/3/fluo/bogus"):
        assert (await client.get(url, allow_redirects=False)).status == 404, url
    assert (await client.get("/iiif/3/fluo/gamma=x/info.json")).status == 400


async def test_extra_qualities_list_every_quality_served(client: TestClient,
                                                         rgb_image: tuple) -> None:
    info = await (await client.get("/iiif/3/slide/info.json")).json(content_type=None)
    for quality in ("color", "gray", "bitonal"):
        assert quality in info["extraQualities"]
        r = await client.get(f"/iiif/3/slide/0,0,64,64/64,/0/{quality}.png")
        assert r.status == 200
