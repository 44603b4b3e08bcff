"""Share links read (only read) the terms of the projects holding what they share,
so shared views can colour annotations; GET /api/images/{id}/terms serves them."""

from __future__ import annotations

import time

from aiohttp.test_utils import TestClient

from microtome.catalog.db import connect
from microtome.catalog.security import share_token
from tests.catalog.helpers import SECRET, Actor, call
from tests.catalog.world import World


async def test_share_links_read_the_terms_of_their_projects(api: TestClient, world: World,
                                                            database_url: str) -> None:
    a, iid, pid = world.actors, world.image_id, world.project_id
    conn = await connect(database_url)
    try:
        # Q also holds the image; R holds another image only.
        q = await conn.fetchval("INSERT INTO projects (name) VALUES ('Q') RETURNING id")
        r = await conn.fetchval("INSERT INTO projects (name) VALUES ('R') RETURNING id")
        other = await conn.fetchval(
            "INSERT INTO images (name, width, height, levels, status)"
            " VALUES ('other', 10, 10, 1, 'ready') RETURNING id")
        await conn.executemany("INSERT INTO project_images VALUES ($1, $2)",
                               [(q, iid), (r, other)])
        ids = {}
        for project, name, color in ((pid, "Tumour", "#e5484d"), (q, "Stroma", "#30a46c"),
                                     (r, "Secret", "#000000")):
            ids[name] = await conn.fetchval(
                "INSERT INTO terms (project_id, name, color) VALUES ($1, $2, $3) RETURNING id",
                project, name, color)
        expires = int(time.time()) + 3600
        sid = await conn.fetchval(
            """INSERT INTO share_links (project_id, created_by, expires_at)
               VALUES ($1, $2, to_timestamp($3)) RETURNING id""",
            # Made by someone allowed to share Q (links die with their creator's rights).
            q, a["admin"].user_id, expires)
    finally:
        await conn.close()
    project_share = Actor("project-share", share=share_token(SECRET, sid, expires))

    # The image's terms, from every project it is in, for anyone who may read the image.
    for who in (a["share"], project_share, a["viewer"], a["admin"]):
        _, got = await call(api, who, "GET", f"/api/images/{iid}/terms", expect=200)
        assert [(t["name"], t["color"], t["project_id"]) for t in got] == [
            ("Tumour", "#e5484d", pid), ("Stroma", "#30a46c", q)], who.name
    await call(api, a["outsider"], "GET", f"/api/images/{iid}/terms", expect=404)
    await call(api, a["anonymous"], "GET", f"/api/images/{iid}/terms", expect=401)
    await call(api, a["share"], "GET", f"/api/images/{other}/terms", expect=404)
    await call(api, a["share"], "GET", "/api/images/99999999/terms", expect=404)

    # Project term lists: an image link reads the projects of its image (P and Q);
    # a link to Q reads Q and the projects holding Q's images (P); R stays closed.
    for who, allowed in ((a["share"], (pid, q)), (project_share, (pid, q))):
        for project in (pid, q):
            await call(api, who, "GET", f"/api/projects/{project}/terms",
                       expect=200 if project in allowed else 404)
        await call(api, who, "GET", f"/api/projects/{r}/terms", expect=404)
        # Read-only: no term may be created, renamed or deleted through a link.
        await call(api, who, "POST", f"/api/projects/{q}/terms", {"name": "x"},
                   expect=403 if who is project_share else 404)
        status, _ = await call(api, who, "PATCH",
                               f"/api/projects/{pid}/terms/{ids['Tumour']}", {"name": "y"})
        assert status in (403, 404), who.name
        status, _ = await call(api, who, "DELETE", f"/api/projects/{q}/terms/{ids['Stroma']}")
        assert status in (403, 404), who.name
    _, terms = await call(api, a["viewer"], "GET", f"/api/projects/{pid}/terms", expect=200)
    assert [t["name"] for t in terms] == ["Tumour"]
    # Other principals are unchanged: a member of P only does not list Q's terms.
    await call(api, a["viewer"], "GET", f"/api/projects/{q}/terms", expect=404)
