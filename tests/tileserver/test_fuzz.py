"""Seeded random garbage in every URL position: never a 500, always a JSON error or an image."""

from __future__ import annotations

import random
import string
from urllib.parse import quote

from aiohttp.test_utils import TestClient
from yarl import URL

ALPHABET = string.ascii_letters + string.digits + ":,.!^-_~%pct+ " + "\x00\\.."
PIECES = ["full", "max", "^max", "square", "pct:", "!", "^", ",", "0", "90", "-1", "1e9",
          "99999999999999999999", "default", "gray", ".jpg", ".png", "..", "%2F", "nan", "inf"]


def _junk(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 4)))
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 12)))


def _seg(s: str) -> str:
    return quote(s, safe="!^,:~")


async def test_random_requests_never_500(client: TestClient, rgb_image: tuple,
                                         nd_image: tuple) -> None:
    rng = random.Random(20261124)
    images = ["slide", "fluo", "nope"]
    for _ in range(300):
        img = rng.choice(images)
        kind = rng.randrange(5)
        if kind == 0:
            parts = [rng.choice(["full", "0,0,100,100", _junk(rng)]),
                     rng.choice(["max", "100,", _junk(rng)]),
                     rng.choice(["0", "90", _junk(rng)]),
                     rng.choice(["default.jpg", "gray.png", _junk(rng) + "." + _junk(rng)])]
            url = f"/iiif/{rng.choice('23')}/{img}/" + "/".join(_seg(p) for p in parts)
        elif kind == 1:
            url = (f"/dzi/{img}_files/{_seg(rng.choice(['8', '10', _junk(rng)]))}/"
                   f"{_seg(_junk(rng))}_{_seg(_junk(rng))}.{rng.choice(['jpg', 'png', 'x'])}")
        elif kind == 2:
            q = "&".join(f"{k}={_seg(_junk(rng))}" for k in
                         rng.sample(["t", "z", "channels", "windows", "colors", "gamma", "v"],
                                    rng.randint(1, 4)))
            url = f"/dzi/{img}_files/8/0_0.png?{q}"
        elif kind == 3:
            url = f"/images/{_seg(_junk(rng))}/thumbnail.jpg?size={_seg(_junk(rng))}"
        else:
            url = f"/iiif/3/{_seg(_junk(rng))}/info.json"
        r = await client.get(URL(url, encoded=True), allow_redirects=False)
        body = await r.read()
        assert r.status < 500 or r.status in (501,), (url, r.status, body[:200])
        if r.status >= 400:
            assert r.headers["Content-Type"].startswith("application/json"), url
            assert b"/tmp" not in body, url
