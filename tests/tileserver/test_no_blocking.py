"""Nothing blocks the event loop: blockbuster raises on blocking calls made in the loop thread.

A blocking call inside a handler would surface as a 500 (the error
middleware catches the BlockingError), so every request below must get its
normal status.  Cold paths are included: first open of an image, first read
of each shard, thumbnails, associated images, metadata, errors.
"""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from blockbuster import blockbuster_ctx

URLS = [
    ("/dzi/slide.dzi", 200),
    ("/dzi/slide_files/10/0_0.jpg", 200),        # pass-through, cold
    ("/dzi/slide_files/10/0_0.jpg", 200),        # cache hit
    ("/dzi/slide_files/10/3_2.png", 200),        # edge tile, rendered
    ("/dzi/slide_files/2/0_0.jpg", 200),         # below the stored pyramid
    ("/iiif/3/slide/info.json", 200),
    ("/iiif/3/slide/full/max/90/gray.png", 200),
    ("/iiif/2/slide/full/full/0/default.webp", 200),
    ("/images/slide/thumbnail.jpg?size=128", 200),
    ("/images/slide/associated/label.jpg", 200),
    ("/images/slide/metadata", 200),
    ("/dzi/fluo_files/8/0_0.png?channels=0,1&z=2", 200),
    ("/dzi/nope_files/1/0_0.jpg", 404),
    ("/iiif/3/slide/full/max/45/default.jpg", 501),
    ("/metrics", 200),
]


async def test_no_blocking_calls_on_the_event_loop(client: TestClient, rgb_image: tuple,
                                                   nd_image: tuple) -> None:
    with blockbuster_ctx(["microtome"]):
        for url, status in URLS:
            r = await client.get(url)
            body = await r.read()
            assert r.status == status, (url, r.status, body[:200])
