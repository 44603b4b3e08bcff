"""Image alignments (side-by-side viewing) and histograms through the Python client."""

from __future__ import annotations

import math
from typing import Any

import pytest
from microtome_client import BadRequest, Client, Forbidden, NotFound
from microtome_client.image import Image
from microtome_client.sync import wrap

from tests.client.conftest import PASSWORD, LiveServer, unique


def test_alignment_roundtrip_inverse_and_access(client: Any, live_server: LiveServer,
                                                ready_images: dict[str, int]) -> None:
    a = client.image(ready_images["CMU-1-Small-Region.svs"])
    b = client.image(ready_images["fluo16.tif"])
    assert a.alignment(b)["saved"] is False and a.alignment(b)["scale"] == 1
    saved = a.set_alignment(b, tx=100, ty=-50, rotation=30, scale=2)
    assert saved["saved"] and (saved["tx"], saved["rotation"], saved["scale"]) == (100, 30, 2)
    # The other direction is the inverse: b's pixel p → a → back to p.
    back = b.alignment(a)
    px, py = 40.0, 70.0
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    qx, qy = 2 * (c * px - s * py) + 100, 2 * (s * px + c * py) - 50
    c2, s2 = math.cos(math.radians(back["rotation"])), math.sin(math.radians(back["rotation"]))
    rx = back["scale"] * (c2 * qx - s2 * qy) + back["tx"]
    ry = back["scale"] * (s2 * qx + c2 * qy) + back["ty"]
    assert abs(rx - px) < 1e-6 and abs(ry - py) < 1e-6
    with pytest.raises(BadRequest):
        a.set_alignment(b, scale=0)
    with pytest.raises(BadRequest):
        a.set_alignment(a)
    # Somebody without access to the images learns nothing and changes nothing.
    name = unique("mallory")
    client.create_user(name, PASSWORD)
    with Client(live_server.url, username=name, password=PASSWORD) as other:
        # An Image record for an id the user cannot open (image() itself would refuse).
        theirs = wrap(Image.from_json({"id": a.id}, other.unwrap()), other._loop)
        for call in (lambda: theirs.alignment(b.id), lambda: theirs.set_alignment(b.id, tx=1),
                     lambda: theirs.delete_alignment(b.id)):
            with pytest.raises((Forbidden, NotFound)):
                call()
    assert a.alignment(b)["tx"] == 100
    a.delete_alignment(b)
    assert a.alignment(b)["saved"] is False


def test_histogram(client: Any, ready_images: dict[str, int]) -> None:
    image = client.image(ready_images["CMU-1-Small-Region.svs"])
    doc = image.histogram()
    assert [c["label"] for c in doc["channels"]] == ["R", "G", "B"]
    assert all(sum(c["counts"]) == c["count"] > 0 for c in doc["channels"])
    full = image.histogram(level=0)
    assert full["sample"]["level"] == 0 and full["channels"][0]["count"] == \
        full["sample"]["width"] * full["sample"]["height"]
    fluo = client.image(ready_images["fluo16.tif"]).histogram()
    assert fluo["dtype"] == "uint16" and len(fluo["channels"]) == 3
    with pytest.raises(NotFound):
        client.image(10**12)
