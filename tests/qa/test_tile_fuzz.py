"""Hostile tile URLs against `microtome tiles` over real converted slides.

Hypothesis builds IIIF, DZI and extras requests from pieces a careless or
hostile client sends: odd regions and sizes, rotations, unicode digits,
%-encodings, `..`, huge numbers, NUL, overlong segments, junk query strings.
The server runs on a loopback port (a thread) over CMU-1-Small-Region.svs
and the multi-channel z-series OME-TIFF, both converted by `converters`.

For every answer: never a 5xx except 501 (a valid IIIF feature we do not
offer), every error a JSON `{"error", "detail"}` body, no filesystem path in
any body, and the server still serves afterwards.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from microtome.tileserver.app import TileSettings, create_tiles_app
from tests.livesrv import live_app

IDS = ["cmu", "sub%20dir%2Fmc", "nope", "sub%20dir", "%2e%2e%2fcmu", "cmu%00", "..",
       "sub%20dir%2F..%2F..%2Fcmu", "%2Fetc%2Fpasswd", "cmu.ome.zarr", "c" * 3000,
       "%C0%AE%C0%AE%2Fcmu", "%FF%FE", "cmu%2F", "~root"]
#: Unicode digits that str.isdigit() accepts but int() may refuse, and friends.
ODD_DIGITS = ["²", "¹", "٣", "０", "①", "Ⅻ", "߀", "𝟘"]
NUMBERS = st.one_of(
    st.integers(0, 3000).map(str),
    st.integers(-10, 10).map(str),
    st.sampled_from(["99999999999999999999", "1e9", "1E3", "0x10", "+1", " 1", "1 ", "00001",
                     "1.5", ".5", "5.", "nan", "inf", "-0", "1_000", *ODD_DIGITS,
                     "9" * 400]))
SAFE = "!^,:~*'()$"
JUNK = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)


def _seg(s: str) -> str:
    return quote(s, safe=SAFE)


regions = st.one_of(
    st.sampled_from(["full", "square", "pct:", "0,0,0,0", ",,,", "pct:0,0,100,100",
                     "pct:-1,0,1,1", "pct:1e3,0,1,1", "pct:nan,0,1,1", "pct:200,200,5,5",
                     "2219,2966,1,1", "2220,2967,1,1", "0,0,99999999999,9"]),
    st.tuples(NUMBERS, NUMBERS, NUMBERS, NUMBERS).map(",".join),
    st.tuples(NUMBERS, NUMBERS, NUMBERS, NUMBERS).map(lambda t: "pct:" + ",".join(t)),
    JUNK)
sizes = st.one_of(
    st.sampled_from(["max", "^max", "full", "^full", ",", "!,", "!0,0", "0,", ",0", "^pct:200",
                     "pct:0", "pct:0.0001", "pct:100", "^!99999,99999", "^1000000,"]),
    st.tuples(st.sampled_from(["", "^", "!", "^!"]), NUMBERS, st.sampled_from([",", ""]),
              NUMBERS).map("".join),
    st.tuples(st.sampled_from(["pct:", "^pct:"]), NUMBERS).map("".join),
    JUNK)
rotations = st.one_of(st.sampled_from(["0", "90", "180", "270", "360", "!0", "!90", "45", "-90",
                                       "!", "!!0", "0.0", "90.000001", "1e2"]),
                      NUMBERS, st.tuples(st.just("!"), NUMBERS).map("".join), JUNK)
tails = st.one_of(
    st.tuples(st.sampled_from(["default", "color", "gray", "bitonal", "grey", "", "DEFAULT"]),
              st.sampled_from(["jpg", "png", "webp", "tif", "gif", "jp2", "pdf", "", "JPG",
                               "jpg.png", "exe"]))
    .map(".".join),
    JUNK)
RENDER_KEYS = ["t", "z", "channels", "windows", "colors", "gamma", "v", "size", "tile_format",
               "share", "token", "stain", "contrast", "brightness", "threshold", "edge"]
query_values = st.one_of(
    NUMBERS, JUNK,
    st.sampled_from(["0,1,2", "0:255,0:255,0:255", "FF0000,00FF00,0000FF", "0:1e308",
                     "-1e308:1e308", "1:1.0000001", "5:5", "0.05", "20", "0,0,0,0,0,0,0,0,0",
                     ",".join(["0"] * 1000), "GGGGGG", "0:nan", "jpeg", "webp", "xml",
                     "H", "dab", "otsu", "sobel", "255", "-1", "1e-400"]))
# Queries stay under core.http.MAX_QUERY_BYTES here: longer ones are a JSON 400
# (test_raw_requests_answered_4xx, tests/tileserver/test_long_requests.py).
queries = st.lists(st.tuples(st.sampled_from(RENDER_KEYS), query_values), max_size=4).map(
    lambda kv: "&".join(f"{quote(k)}={quote(v, safe=',:')}" for k, v in kv))


@st.composite
def iiif_urls(draw: st.DrawFn) -> str:
    version = draw(st.sampled_from(["3", "2", "3", "2", "1", "4", "%33"]))
    ident = draw(st.sampled_from(IDS))
    form = draw(st.integers(0, 5))
    if form == 0:
        return f"/iiif/{version}/{ident}/info.json"
    if form == 1:
        return f"/iiif/{version}/{ident}"
    parts = [draw(regions), draw(sizes), draw(rotations), draw(tails)]
    return f"/iiif/{version}/{ident}/" + "/".join(_seg(p) for p in parts)


@st.composite
def dzi_urls(draw: st.DrawFn) -> str:
    ident = draw(st.sampled_from(IDS))
    if draw(st.booleans()):
        return f"/dzi/{ident}.dzi"
    level, col, row = draw(NUMBERS), draw(NUMBERS), draw(NUMBERS)
    sep = draw(st.sampled_from(["_", "_", "-", "__", ""]))
    fmt = draw(st.sampled_from(["jpg", "jpeg", "png", "webp", "gif", "", "JPG", "jpg%00"]))
    return f"/dzi/{ident}_files/{_seg(level)}/{_seg(col)}{sep}{_seg(row)}.{fmt}"


@st.composite
def extra_urls(draw: st.DrawFn) -> str:
    ident = draw(st.sampled_from(IDS))
    kind = draw(st.integers(0, 2))
    if kind == 0:
        fmt = draw(st.sampled_from(["jpg", "png", "webp", "bmp", ""]))
        return f"/images/{ident}/thumbnail.{fmt}"
    if kind == 1:
        name = draw(st.one_of(st.sampled_from(["label", "macro", "thumbnail", "..%2Fzarr",
                                               "%2E%2E", "zarr", "LABEL", "label%00"]), JUNK))
        fmt = draw(st.sampled_from(["jpg", "png", "webp", "json"]))
        return f"/images/{ident}/associated/{_seg(name)}.{fmt}"
    return f"/images/{ident}/metadata"


@pytest.fixture(scope="module")
def tile_root(tmp_path_factory: pytest.TempPathFactory, testdata: Path) -> Path:
    from microtome.converters import convert

    root = tmp_path_factory.mktemp("tile-root")
    convert(testdata / "CMU-1-Small-Region.svs", root / "cmu.ome.zarr")
    convert(testdata / "multi-channel-z-series.ome.tif", root / "sub dir" / "mc.ome.zarr")
    return root


@pytest.fixture(scope="module")
def server(tile_root: Path) -> Iterator[tuple[str, int]]:
    factory = lambda: create_tiles_app(tile_root, TileSettings(threads=2))  # noqa: E731
    with live_app(factory) as base:
        host, port = base.removeprefix("http://").split(":")
        yield host, int(port)


def _get(server: tuple[str, int], url: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(*server, timeout=60)
    try:
        conn.request("GET", url)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def _check(server: tuple[str, int], root: Path, url: str) -> None:
    status, headers, body = _get(server, url)
    assert status < 500 or status == 501, (url, status, body[:300])
    assert str(root).encode() not in body and b"/tmp/" not in body, (url, body[:300])
    assert b"Traceback" not in body, url
    if status >= 400:
        assert headers.get("content-type", "").startswith("application/json"), (url, headers)
        doc = json.loads(body)
        assert isinstance(doc.get("error"), str) and doc["error"], (url, doc)
    elif status == 200:
        assert body, url


FUZZ = settings(max_examples=300, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@FUZZ
@given(url=iiif_urls(), query=queries)
def test_iiif_urls(server: tuple[str, int], tile_root: Path, url: str, query: str) -> None:
    _check(server, tile_root, url + ("?" + query if query else ""))


@FUZZ
@given(url=dzi_urls(), query=queries)
def test_dzi_urls(server: tuple[str, int], tile_root: Path, url: str, query: str) -> None:
    _check(server, tile_root, url + ("?" + query if query else ""))


@FUZZ
@given(url=extra_urls(), query=queries)
def test_extras_urls(server: tuple[str, int], tile_root: Path, url: str, query: str) -> None:
    _check(server, tile_root, url + ("?" + query if query else ""))


# Found by the fuzzers above: str.isdigit() accepts '²', int() does not (was a 500).
@pytest.mark.parametrize("url", [
    "/dzi/cmu_files/%C2%B2/0_0.jpg",
    "/dzi/cmu_files/0/%C2%B9_0.jpg",
    "/images/cmu/thumbnail.jpg?size=%C2%B2",
    "/dzi/sub%20dir%2Fmc_files/9/0_0.png?z=%C2%B2",
    "/dzi/sub%20dir%2Fmc_files/9/0_0.png?channels=%C2%B9",
    "/images/sub%20dir%2Fmc/thumbnail.png?t=%C2%B9",
])
def test_unicode_digits_are_400(server: tuple[str, int], tile_root: Path, url: str) -> None:
    status, _, body = _get(server, url)
    assert status == 400, (url, status, body[:200])
    _check(server, tile_root, url)


@FUZZ
@given(x=st.integers(0, 2219), y=st.integers(0, 2966), w=st.integers(1, 4), h=st.integers(1, 4),
       rot=st.sampled_from(["0", "90", "180", "270", "!0", "!90", "!270"]),
       quality=st.sampled_from(["default", "gray", "bitonal"]),
       fmt=st.sampled_from(["jpg", "png", "webp"]))
def test_thin_regions_in_every_rotation(server: tuple[str, int], x: int, y: int, w: int, h: int,
                                        rot: str, quality: str, fmt: str) -> None:
    """1-4 px regions at the image edge, rotated: a 1-px-high region turned 90°
    used to reach the encoder with a negative stride (500)."""
    import imagecodecs

    url = f"/iiif/3/cmu/{x},{y},{w},{h}/max/{rot}/{quality}.{fmt}"
    status, _, body = _get(server, url)
    assert status == 200, (url, status, body[:200])
    w, h = min(w, 2220 - x), min(h, 2967 - y)  # regions are clipped to the image
    pixels = imagecodecs.imread(body)
    want = (w, h) if rot.lstrip("!") in ("90", "270") else (h, w)
    assert pixels.shape[:2] == want, (url, pixels.shape)


def _raw(server: tuple[str, int], request: bytes) -> bytes:
    with socket.create_connection(server, timeout=30) as s:
        s.sendall(request)
        chunks = []
        while True:
            try:
                data = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)


# `ours`: the request line is well-formed and under MAX_REQUEST_LINE_BYTES (the live
# server applies the same parser limits as the CLIs), so our app must answer with its
# JSON error.  Otherwise aiohttp's parser refuses it first (invalid bytes, or over the
# hard limit) and a plain-text 4xx is all we can ask for.
@pytest.mark.parametrize(("target", "ours"), [
    (b"/iiif/3/cmu/full/max/0/default.jpg\x00", False),
    (b"/iiif/3/cmu/\xff\xfe/max/0/default.jpg", False),
    (b"/dzi/cmu_files/0/0_0.jpg?\xc0\xaf", False),
    (b"/iiif/3/" + b"a" * 100_000 + b"/info.json", False),
    (b"/dzi/" + b"%2F" * 5000 + b".dzi", True),
    (b"/iiif/3/cmu/" + b"/".join([b"full"] * 2000), True),
    (b"/images/cmu/metadata?" + b"&".join([b"t=0"] * 5000), True),
    (b"/iiif/3/cmu/full/max/0/default.jpg?x=" + b"a" * 20_000, True),
    (b"/images/cmu/metadata?" + b"&".join([b"t=0"] * 20000), False),
])
def test_raw_requests_answered_4xx(server: tuple[str, int], tile_root: Path,
                                   target: bytes, ours: bool) -> None:
    """Bytes no client library would send: a 4xx status line (or a closed socket), no 5xx."""
    answer = _raw(server, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer or not ours
    if answer:
        status = int(answer.split(b" ", 2)[1])
        assert 400 <= status < 500, (target[:80], answer[:300])
        assert str(tile_root).encode() not in answer
        head, _, body = answer.partition(b"\r\n\r\n")
        if ours:
            assert b"\r\nContent-Type: application/json" in head, answer[:300]
            assert b"\r\nAccess-Control-Allow-Origin: *\r\n" in head, answer[:300]
            assert set(json.loads(body)) == {"error", "detail"}
    # Whatever happened, the server still serves.
    assert _get(server, "/iiif/3/cmu/info.json")[0] == 200


def test_server_healthy_after_fuzzing(server: tuple[str, int]) -> None:
    for url in ("/iiif/3/cmu/info.json", "/dzi/sub%20dir%2Fmc.dzi",
                "/iiif/3/cmu/0,0,256,256/256,/0/default.jpg",
                "/dzi/sub%20dir%2Fmc_files/9/0_0.png?channels=0,2&z=4"):
        status, _, body = _get(server, url)
        assert status == 200, (url, status, body[:200])
