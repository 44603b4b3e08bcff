"""Every bad input gets its 4xx/501 (422 for damaged storage) with a JSON body, never a 500."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

from microtome.core.http import status_for
from microtome.pyramid.errors import StorageError
from microtome.pyramid.layout import index_nbytes

#: Damaged storage is the server's problem, not the client's: whatever status the
#: shared error table gives StorageError (422), never a 500.
DAMAGED = status_for(StorageError("x"))
assert DAMAGED == 422

BAD = [
    # Deep Zoom
    ("/dzi/nope.dzi", 404),
    ("/dzi/nope_files/0/0_0.jpg", 404),
    ("/dzi/slide_files/11/0_0.jpg", 404),          # level above the maximum
    ("/dzi/slide_files/-1/0_0.jpg", 400),          # negative level
    ("/dzi/slide_files/abc/0_0.jpg", 400),         # non-numeric level
    ("/dzi/slide_files/10/4_0.jpg", 404),          # column past the edge
    ("/dzi/slide_files/10/0_3.jpg", 404),          # row past the edge
    ("/dzi/slide_files/0/1_0.jpg", 404),           # past the edge of the 1x1 level
    ("/dzi/slide_files/10/-1_0.jpg", 400),
    ("/dzi/slide_files/10/0_-1.jpg", 400),
    ("/dzi/slide_files/10/a_b.jpg", 400),
    ("/dzi/slide_files/10/1.5_0.jpg", 400),
    ("/dzi/slide_files/10/00.jpg", 400),
    ("/dzi/slide_files/10/99999999999999999999_0.jpg", 400),
    ("/dzi/slide_files/10/0_0.gif", 400),          # unknown format
    ("/dzi/slide.dzi?tile_format=tiff", 400),
    # IIIF
    ("/iiif/3/nope/info.json", 404),
    ("/iiif/3/nope/full/max/0/default.jpg", 404),
    ("/iiif/3/nope", 404),
    ("/iiif/4/slide/info.json", 404),               # unknown API version
    ("/iiif/3/slide/1000,0,10,10/max/0/default.jpg", 400),   # wholly outside
    ("/iiif/3/slide/0,700,10,10/max/0/default.jpg", 400),
    ("/iiif/3/slide/0,0,0,10/max/0/default.jpg", 400),       # zero-size region
    ("/iiif/3/slide/pct:0,0,0,0/max/0/default.jpg", 400),
    ("/iiif/3/slide/-1,0,10,10/max/0/default.jpg", 400),     # negative
    ("/iiif/3/slide/a,b,c,d/max/0/default.jpg", 400),        # non-numeric
    ("/iiif/3/slide/full/0,/0/default.jpg", 400),            # zero size
    ("/iiif/3/slide/full/^9000,/0/default.jpg", 400),        # over maxWidth
    ("/iiif/3/slide/full/^5000,5000/0/default.jpg", 400),    # over maxArea
    ("/iiif/3/slide/full/2000,/0/default.jpg", 400),         # upscaling without ^
    ("/iiif/3/slide/full/pct:150/0/default.jpg", 400),       # pct > 100 without ^
    ("/iiif/3/slide/full/full/0/default.jpg", 400),          # 2.x syntax in 3.0
    ("/iiif/3/slide/full/max/45/default.jpg", 501),          # valid, not offered
    ("/iiif/3/slide/full/max/-90/default.jpg", 400),
    ("/iiif/3/slide/full/max/400/default.jpg", 400),
    ("/iiif/3/slide/full/max/0/sepia.jpg", 400),             # unknown quality
    ("/iiif/3/slide/full/max/0/default.bmp", 400),           # unknown format
    ("/iiif/3/slide/full/max/0/default.tif", 501),           # known, not offered
    ("/iiif/3/slide/full/max/0/default", 400),
    ("/iiif/2/slide/full/^max/0/default.jpg", 400),          # 3.0 syntax in 2.1
    # Identifiers that try to escape the root
    ("/iiif/3/..%2Fslide/info.json", 400),
    ("/iiif/3/a%2F..%2F..%2Fslide/info.json", 400),
    ("/iiif/3/%2Fetc%2Fpasswd/info.json", 400),
    ("/iiif/3/slide%00/info.json", 400),
    ("/iiif/3/slide%5C..%5Cx/info.json", 400),
    ("/dzi/..%2F..%2Fslide.dzi", 400),
    ("/images/%2E%2E%2Fslide/metadata", 400),
    ("/iiif/3/a/b/full/max/0/default.jpg", 404),             # unescaped slash
    # Extras
    ("/images/nope/metadata", 404),
    ("/images/slide/thumbnail.jpg?size=0", 400),
    ("/images/slide/thumbnail.jpg?size=99999", 400),
    ("/images/slide/thumbnail.jpg?size=-5", 400),
    ("/images/slide/thumbnail.bmp", 400),
    ("/images/slide/associated/macro.jpg", 404),
    ("/images/slide/associated/..%2Fzarr.jpg", 404),
    ("/images/slide/associated/label.tiff", 400),
    # Rendering parameters on an nd image
    ("/dzi/fluo_files/8/0_0.jpg?z=3", 400),
    ("/dzi/fluo_files/8/0_0.jpg?t=-1", 400),
    ("/dzi/fluo_files/8/0_0.jpg?channels=0,9", 400),
    ("/dzi/fluo_files/8/0_0.jpg?channels=0,1&windows=0:10", 400),
    ("/dzi/fluo_files/8/0_0.jpg?channels=0&windows=10:5", 400),
    ("/dzi/fluo_files/8/0_0.jpg?channels=0&windows=a:b", 400),
    ("/dzi/fluo_files/8/0_0.jpg?channels=0&colors=GG0000", 400),
    ("/dzi/fluo_files/8/0_0.jpg?gamma=0", 400),
    ("/dzi/fluo_files/8/0_0.jpg?gamma=nan", 400),
    ("/dzi/fluo_files/8/0_0.jpg?channels=" + ",".join(["0"] * 500), 400),
    ("/iiif/3/fluo/full/max/0/default.jpg?windows=1:0,1:0", 400),
]


async def _check_error(client: TestClient, url: str, status: int, root: Path) -> None:
    r = await client.get(URL(url, encoded=True), allow_redirects=False)
    text = await r.text()
    assert r.status != 500 and r.status == status, (url, r.status, text)
    assert r.headers["Content-Type"].startswith("application/json"), url
    assert r.headers["Access-Control-Allow-Origin"] == "*", url
    body = await r.json()
    assert set(body) == {"error", "detail"} and body["error"], url
    assert str(root) not in text and "/tmp" not in text and ".ome.zarr" not in text, url


async def test_bad_input_matrix(client: TestClient, rgb_image: tuple, nd_image: tuple,
                                tiles_root: Path) -> None:
    for url, status in BAD:
        await _check_error(client, url, status, tiles_root)


async def test_region_partly_outside_is_cropped(client: TestClient, rgb_image: tuple) -> None:
    r = await client.get("/iiif/3/slide/900,600,500,500/max/0/default.jpg")
    assert r.status == 200
    r = await client.get("/iiif/3/slide/900,600,500,500/max/0/default.jpg")
    assert 'full/' not in r.headers["Link"] and "900,600,100,100/max/" in r.headers["Link"]


async def test_huge_query_string_is_refused_not_crashed(client: TestClient,
                                                         rgb_image: tuple) -> None:
    # Over aiohttp's request-line limit: the HTTP parser answers before any handler.
    r = await client.get("/dzi/slide_files/10/0_0.jpg?x=" + "a" * 100_000)
    assert 400 <= r.status < 500
    # Large but parseable: ignored parameters do not matter, the server still answers.
    r = await client.get("/dzi/slide_files/10/0_0.jpg?x=" + "a" * 6000)
    assert r.status == 200
    r = await client.get("/dzi/slide_files/10/0_0.jpg")
    assert r.status == 200


def _shard(root: Path) -> Path:
    return root / "slide.ome.zarr" / "0" / "c" / "0" / "0" / "0"


async def test_damaged_chunk_is_a_storage_error(client: TestClient, rgb_image: tuple,
                                                tiles_root: Path) -> None:
    shard = _shard(tiles_root)
    data = bytearray(shard.read_bytes())
    data[0:64] = b"\x00" * 64  # first chunk: no JPEG header any more
    shard.write_bytes(bytes(data))
    await _check_error(client, "/dzi/slide_files/10/0_0.jpg", DAMAGED, tiles_root)
    await _check_error(client, "/iiif/3/slide/0,0,300,300/max/0/default.png", DAMAGED, tiles_root)
    # Other shards still serve.
    r = await client.get("/dzi/slide_files/10/2_0.jpg")
    assert r.status == 200


async def test_damaged_shard_index_and_truncated_shard(client: TestClient, rgb_image: tuple,
                                                       tiles_root: Path) -> None:
    shard = _shard(tiles_root)
    data = bytearray(shard.read_bytes())
    data[-10] ^= 0xFF  # index checksum no longer matches
    shard.write_bytes(bytes(data))
    await _check_error(client, "/dzi/slide_files/10/1_1.jpg", DAMAGED, tiles_root)
    other = tiles_root / "slide.ome.zarr" / "0" / "c" / "0" / "0" / "1"
    other.write_bytes(other.read_bytes()[: index_nbytes(2) - 8])
    await _check_error(client, "/dzi/slide_files/10/2_0.jpg", DAMAGED, tiles_root)


async def test_damaged_metadata(client: TestClient, rgb_image: tuple, tiles_root: Path) -> None:
    (tiles_root / "slide.ome.zarr" / "zarr.json").write_text("{not json")
    await _check_error(client, "/iiif/3/slide/info.json", DAMAGED, tiles_root)
    (tiles_root / "slide.ome.zarr" / "zarr.json").write_text('{"attributes": {"ome": 5}}')
    await _check_error(client, "/dzi/slide.dzi", DAMAGED, tiles_root)


async def test_image_deleted_while_served(client: TestClient, rgb_image: tuple,
                                          tiles_root: Path) -> None:
    r = await client.get("/dzi/slide_files/10/0_0.jpg")
    assert r.status == 200
    shutil.rmtree(tiles_root / "slide.ome.zarr")
    # Tiles never read before, tiles whose shard index is cached, the descriptor: all 404.
    for url in ("/dzi/slide_files/10/1_0.jpg", "/dzi/slide_files/10/3_2.jpg",
                "/dzi/slide_files/9/0_0.jpg", "/dzi/slide.dzi", "/iiif/3/slide/info.json",
                "/dzi/slide_files/10/0_0.jpg"):
        await _check_error(client, url, 404, tiles_root)


@pytest.mark.parametrize("name", ["..", "a/../b", "/abs", "a\\b", "a\x00b", ""])
def test_check_id_rejects(name: str) -> None:
    from microtome.pyramid.errors import InvalidRequest, NotFound
    from microtome.tileserver.resolver import check_id

    with pytest.raises((InvalidRequest, NotFound)):
        check_id(name)


async def test_symlink_out_of_root_is_not_served(client: TestClient, rgb_image: tuple,
                                                 tiles_root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.ome.zarr"
    shutil.copytree(tiles_root / "slide.ome.zarr", outside)
    os.symlink(outside, tiles_root / "escape.ome.zarr")
    await _check_error(client, "/dzi/escape.dzi", 404, tiles_root)


async def test_image_deleted_behind_a_trusting_resolver(
        aiohttp_client, rgb_image: tuple, tiles_root: Path) -> None:  # type: ignore[no-untyped-def]
    """Even while the id → image resolution is still cached, reads of a deleted image are 404s."""
    from microtome.tileserver.app import TileSettings, create_tiles_app

    client = await aiohttp_client(create_tiles_app(tiles_root, TileSettings(resolver_ttl=600)))
    for url in ("/dzi/slide_files/10/0_0.jpg", "/dzi/slide_files/10/1_0.jpg"):
        assert (await client.get(url)).status == 200
    shutil.rmtree(tiles_root / "slide.ome.zarr")
    # 1_0 shares the cached shard index of 0_0; 3_2 and level 9 need new shards.
    for url in ("/dzi/slide_files/10/1_1.jpg", "/dzi/slide_files/10/3_2.jpg",
                "/dzi/slide_files/9/1_1.jpg", "/iiif/3/slide/10,10,300,300/max/0/default.jpg"):
        await _check_error(client, url, 404, tiles_root)
