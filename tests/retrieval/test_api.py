"""Retrieval through the real app on real pixels (CMU-1-Small-Region), real PostgreSQL
with pgvector: ranking quality, term suggestions, access control, bad input."""

from __future__ import annotations

from typing import Any

import pytest

from microtome.catalog.db import DB_POOL
from microtome.retrieval import index
from microtome.retrieval.web import STATE
from tests.catalog.helpers import Actor
from tests.retrieval.conftest import RWorld, annotate, tile_polygon
from tests.retrieval.labelled_tiles import LABELS

#: Bob's copy of the slide holds two annotations of each class.
BOB_CELLS = {label: cells[:2] for label, cells in LABELS.items()}
K = 5
#: Mean precision@5 over every labelled annotation (leave-one-out).  The descriptor
#: measures ~0.98 on these tiles; a random ranking would give ~0.31.
MIN_PRECISION = 0.85
#: Leave-one-out accuracy of the first suggested term (measured 1.0).
MIN_TERM_ACCURACY = 0.9


async def post(w: RWorld, actor: Actor, path: str, body: Any) -> tuple[int, Any]:
    resp = await w.client.post(path, json=body, headers=actor.headers("POST"))
    return resp.status, await resp.json()


async def similar(w: RWorld, actor: Actor, **body: Any) -> list[dict[str, Any]]:
    status, out = await post(w, actor, "/api/retrieval/similar", body)
    assert status == 200, out
    return out["items"]  # type: ignore[no-any-return]


async def test_same_class_neighbours_rank_first_and_terms_are_suggested(
        rworld: RWorld) -> None:
    w = rworld
    labels = await annotate(w, w.alice, LABELS)
    precisions, correct = [], 0
    for aid, label in labels.items():
        items = await similar(w, w.alice.actor, annotation_id=aid, k=K)
        assert len(items) == K and aid not in {i["annotation_id"] for i in items}
        assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)
        precisions.append(sum(labels[i["annotation_id"]] == label for i in items) / K)
        status, out = await post(w, w.alice.actor, "/api/retrieval/suggest-term",
                                 {"annotation_id": aid, "k": K})
        assert status == 200, out
        correct += out["terms"][0]["name"] == label
        assert 0 < out["terms"][0]["score"] <= 1
    assert out["method"] == "hnsw" and out["pending"] == 0
    precision = sum(precisions) / len(precisions)
    assert precision >= MIN_PRECISION, precision
    assert correct / len(labels) >= MIN_TERM_ACCURACY, correct / len(labels)


async def test_a_drawn_region_finds_its_class(rworld: RWorld) -> None:
    w = rworld
    labels = await annotate(w, w.alice, LABELS)
    # Unannotated regions: glass at the top right, dermis collagen between labelled tiles.
    for (gx, gy), expected in (((10, 2), "background"), ((8, 12), "stroma")):
        items = await similar(w, w.alice.actor, image_id=w.alice.image_id,
                              geometry=tile_polygon(gx, gy), k=3, scope="image")
        assert [labels[i["annotation_id"]] for i in items] == [expected] * 3
        assert items[0]["terms"][0]["name"] == expected
        assert items[0]["crop_url"].startswith(f"/api/annotations/{items[0]['annotation_id']}/")
    # Restricted to other terms, the same region gets only those.
    stroma = w.alice.terms["stroma"]
    items = await similar(w, w.alice.actor, image_id=w.alice.image_id,
                          geometry=tile_polygon(10, 2), k=5, terms=[stroma])
    assert len(items) == 5 and {labels[i["annotation_id"]] for i in items} == {"stroma"}


async def test_only_readable_annotations_are_returned_and_k_is_still_met(
        rworld: RWorld) -> None:
    w = rworld
    alice_labels = await annotate(w, w.alice, LABELS)
    bob_labels = await annotate(w, w.bob, BOB_CELLS)
    for aid in list(bob_labels)[:2]:
        items = await similar(w, w.bob.actor, annotation_id=aid, k=5, scope="all")
        # Alice's 33 annotations are closer to many of these, but bob cannot read them:
        # he still gets his 5 other annotations.
        assert {i["image_id"] for i in items} == {w.bob.image_id}
        assert {i["annotation_id"] for i in items} == set(bob_labels) - {aid}
    for aid in list(alice_labels)[:3]:
        items = await similar(w, w.alice.actor, annotation_id=aid, k=40, scope="all")
        assert {i["image_id"] for i in items} == {w.alice.image_id}
        assert len(items) == len(alice_labels) - 1
    # Alice cannot query from bob's annotation nor his image; anonymous not at all.
    some_bob = next(iter(bob_labels))
    status, _ = await post(w, w.alice.actor, "/api/retrieval/similar",
                           {"annotation_id": some_bob})
    assert status == 404
    status, _ = await post(w, w.alice.actor, "/api/retrieval/suggest-term",
                           {"image_id": w.bob.image_id, "geometry": tile_polygon(1, 1)})
    assert status == 404
    status, _ = await post(w, w.anonymous, "/api/retrieval/similar",
                           {"annotation_id": some_bob})
    assert status == 401


async def test_scopes_and_deleted_annotations(rworld: RWorld) -> None:
    w = rworld
    labels = await annotate(w, w.alice, LABELS)
    ids = list(labels)
    items = await similar(w, w.alice.actor, annotation_id=ids[0], k=40, scope="image")
    assert len(items) == len(ids) - 1
    gone = items[0]["annotation_id"]
    resp = await w.client.delete(f"/api/annotations/{gone}",
                                 headers=w.alice.actor.headers("DELETE"))
    assert resp.status == 204
    for scope in ("image", "project", "all"):
        items = await similar(w, w.alice.actor, annotation_id=ids[0], k=40, scope=scope)
        assert gone not in {i["annotation_id"] for i in items}
        assert len(items) == len(ids) - 2


async def test_exact_search_agrees_with_the_index(rworld: RWorld,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    w = rworld
    # So few rows would be scanned exactly with pgvector too: force the index.
    monkeypatch.setattr(index, "EXACT_ROWS", 0)
    labels = await annotate(w, w.alice, LABELS)
    aid = next(iter(labels))
    assert w.client.app is not None
    assert w.client.app[STATE].use_vector
    status, hnsw = await post(w, w.alice.actor, "/api/retrieval/similar",
                              {"annotation_id": aid, "k": 8})
    w.client.app[STATE].use_vector = False  # as on a server without pgvector
    status, exact = await post(w, w.alice.actor, "/api/retrieval/similar",
                               {"annotation_id": aid, "k": 8})
    assert status == 200 and exact["method"] == "exact" and hnsw["method"] == "hnsw"
    assert [i["annotation_id"] for i in exact["items"]] == [
        i["annotation_id"] for i in hnsw["items"]]
    for a, b in zip(exact["items"], hnsw["items"], strict=True):
        assert a["score"] == pytest.approx(b["score"], abs=1e-4)


@pytest.mark.parametrize("body, fragment", [
    ({"annotation_id": 1, "image_id": 1, "geometry": {}}, "either"),
    ({}, "either"),
    ({"annotation_id": 1, "scope": "world"}, "scope"),
    ({"annotation_id": 1, "k": 0}, "k must"),
    ({"annotation_id": 1, "k": 101}, "k must"),
    ({"annotation_id": "1"}, "annotation_id"),
    ({"annotation_id": 1, "term": []}, "unknown field"),
    ({"annotation_id": 1, "terms": ["x"]}, "terms must"),
])
async def test_bad_requests_are_400(rworld: RWorld, body: dict[str, Any],
                                    fragment: str) -> None:
    status, out = await post(rworld, rworld.alice.actor, "/api/retrieval/similar", body)
    assert status == 400 and fragment in out["error"], out


async def test_regions_too_small_or_too_large_are_400_with_the_limits(rworld: RWorld) -> None:
    w = rworld
    small = {"type": "Polygon", "coordinates": [[[10, 10], [30, 10], [30, 30], [10, 30],
                                                 [10, 10]]]}
    big = {"type": "Polygon", "coordinates": [[[0, 0], [2220, 0], [2220, 2967], [0, 2967],
                                               [0, 0]]]}
    for geom in (small, big):
        # big: 1108 x 1481 px at 1 µm/px is inside the limits, so it is described.
        status, out = await post(w, w.alice.actor, "/api/retrieval/similar",
                                 {"image_id": w.alice.image_id, "geometry": geom})
        if geom is small:
            assert status == 400 and out["detail"]["min_side"] == 16, out
        else:
            assert status == 200, out
    resp = await w.client.post("/api/retrieval/similar", data=b"{nope",
                               headers=w.alice.actor.headers("POST"))
    assert resp.status == 400


async def test_a_share_link_reads_only_its_image(rworld: RWorld) -> None:
    import time

    from microtome.catalog.db import connect
    from microtome.catalog.security import share_token
    from tests.catalog.helpers import SECRET

    w = rworld
    alice_labels = await annotate(w, w.alice, LABELS)
    bob_labels = await annotate(w, w.bob, BOB_CELLS)
    expires = int(time.time()) + 3600
    conn = await connect(w.database_url)
    try:
        sid = await conn.fetchval(
            """INSERT INTO share_links (image_id, created_by, expires_at)
               VALUES ($1, $2, to_timestamp($3)) RETURNING id""",
            w.alice.image_id, w.alice.actor.user_id, expires)
    finally:
        await conn.close()
    link = Actor("share", share=share_token(SECRET, sid, expires))
    # Bob's copy holds pixel-identical tiles (score ~1): they must still not show.
    items = await similar(w, link, annotation_id=next(iter(alice_labels)), k=40)
    assert {i["image_id"] for i in items} == {w.alice.image_id}
    assert len(items) == len(alice_labels) - 1
    status, _ = await post(w, link, "/api/retrieval/similar",
                           {"annotation_id": next(iter(bob_labels))})
    assert status in (403, 404)


async def test_no_blocking_calls_in_retrieval(rworld: RWorld) -> None:
    import asyncio

    from blockbuster import blockbuster_ctx

    w = rworld
    labels = await annotate(w, w.alice, LABELS)
    h = w.alice.actor.headers("GET")
    # Grow the pool first (asyncpg stats ~/.pgpass when it connects: not our code).
    await asyncio.gather(*(w.client.get(f"/api/images/{w.alice.image_id}/terms", headers=h)
                           for _ in range(10)))
    with blockbuster_ctx(["microtome.retrieval"]):
        await similar(w, w.alice.actor, annotation_id=next(iter(labels)), k=5)
        await similar(w, w.alice.actor, image_id=w.alice.image_id,
                      geometry=tile_polygon(2, 2), k=5)
        status, _ = await post(w, w.alice.actor, "/api/retrieval/suggest-term",
                               {"annotation_id": next(iter(labels))})
        assert status == 200


async def test_a_changed_annotation_is_described_again(rworld: RWorld) -> None:
    w = rworld
    labels = await annotate(w, w.alice, LABELS)
    moved = next(a for a, lab in labels.items() if lab == "stroma")
    items = await similar(w, w.alice.actor, annotation_id=moved, k=3)
    assert {labels[i["annotation_id"]] for i in items} == {"stroma"}
    # Moved onto glass: its old (stroma) descriptor is stale and must not be used.
    resp = await w.client.patch(f"/api/annotations/{moved}",
                                json={"geometry": tile_polygon(10, 3)},
                                headers=w.alice.actor.headers("PATCH"))
    assert resp.status == 200, await resp.text()
    items = await similar(w, w.alice.actor, annotation_id=moved, k=3)
    assert {labels[i["annotation_id"]] for i in items} == {"background"}
    # And as a neighbour of a glass tile it now counts as glass.
    glass = next(a for a, lab in labels.items() if lab == "background")
    items = await similar(w, w.alice.actor, annotation_id=glass, k=len(LABELS["background"]))
    assert moved in {i["annotation_id"] for i in items}


async def test_nothing_else_to_compare_with_is_an_empty_answer(rworld: RWorld) -> None:
    w = rworld
    await annotate(w, w.alice, LABELS)  # alice's: invisible to bob
    [only] = await annotate(w, w.bob, {"stroma": LABELS["stroma"][:1]})
    assert await similar(w, w.bob.actor, annotation_id=only) == []
    status, out = await post(w, w.bob.actor, "/api/retrieval/suggest-term",
                             {"annotation_id": only})
    assert status == 200 and out["terms"] == [] and out["neighbours"] == 0


def test_the_migration_vector_size_is_the_descriptor_size() -> None:
    import re

    from microtome.app import MIGRATION_DIRS
    from microtome.retrieval.descriptors import DIM

    sql = next(d for d in MIGRATION_DIRS if d.parent.name == "retrieval").joinpath(
        "0150_annotation_descriptors.sql").read_text()
    assert set(re.findall(r"vector\((\d+)\)", sql)) == {str(DIM)}


async def test_the_search_method_follows_the_server(aiohttp_client: Any, tmp_path: Any,
                                                    database_url: str, pg_server_url: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """On the session's server (Debian's PostgreSQL without pgvector under DATABASE_URL,
    else the embedded one with it): HNSW when offered, else exact search and one clear
    start-up warning; retrieval answers either way."""
    from microtome.app import create_app
    from tests.catalog.conftest import make_settings
    from tests.retrieval.conftest import _offers_vector

    offered = await _offers_vector(pg_server_url)
    with caplog.at_level("WARNING", logger="retrieval"):
        client = await aiohttp_client(create_app(make_settings(tmp_path, database_url)))
    assert client.app[STATE].use_vector is offered
    warned = [r for r in caplog.records if "pgvector" in r.getMessage()]
    assert len(warned) == (0 if offered else 1)


async def test_undescribable_annotations_are_recorded_never_returned_and_refused_as_queries(
        rworld: RWorld) -> None:
    w = rworld
    labels = await annotate(w, w.alice, LABELS)
    resp = await w.client.post(
        f"/api/images/{w.alice.image_id}/annotations",
        json={"geometry": {"type": "Point", "coordinates": [500, 500]},
              "project_id": w.alice.project_id}, headers=w.alice.actor.headers("POST"))
    assert resp.status == 201, await resp.text()
    point = (await resp.json())["id"]
    query = {"annotation_id": next(iter(labels)), "k": 100}
    # 33 annotations to describe, at most 32 per request: one is left for the next.
    status, out = await post(w, w.alice.actor, "/api/retrieval/similar", query)
    assert status == 200 and out["pending"] == 1
    status, out = await post(w, w.alice.actor, "/api/retrieval/similar", query)
    assert status == 200 and point not in {i["annotation_id"] for i in out["items"]}
    assert out["pending"] == 0 and len(out["items"]) == len(labels) - 1
    status, out = await post(w, w.alice.actor, "/api/retrieval/suggest-term",
                             {"annotation_id": point})
    assert status == 400 and out["detail"]["min_side"] == 16, out


async def test_suggested_terms_are_mapped_to_the_query_project_by_name(rworld: RWorld) -> None:
    """Alice's labelled annotations vote for the terms of Bob's project (where the query
    annotation lives) with the same names; a term with no namesake there is suggested
    as it is, not applicable."""
    w = rworld
    await annotate(w, w.alice, LABELS)
    async with w.client.app[DB_POOL].acquire() as conn:  # type: ignore[index]
        await conn.execute("INSERT INTO project_members VALUES ($1, $2, 'contributor')",
                           w.bob.project_id, w.alice.actor.user_id)
        await conn.execute("UPDATE terms SET name = 'glass' WHERE id = $1",
                           w.bob.terms["background"])
    queries = {}
    for label in ("stroma", "background"):
        gx, gy = LABELS[label][0]
        resp = await w.client.post(f"/api/images/{w.bob.image_id}/annotations",
                                   json={"geometry": tile_polygon(gx, gy),
                                         "project_id": w.bob.project_id},
                                   headers=w.alice.actor.headers("POST"))
        assert resp.status == 201, await resp.text()
        queries[label] = (await resp.json())["id"]
    status, out = await post(w, w.alice.actor, "/api/retrieval/suggest-term",
                             {"annotation_id": queries["stroma"], "k": 8})
    assert status == 200 and out["project_id"] == w.bob.project_id, out
    best = out["terms"][0]
    assert (best["term_id"], best["project_id"], best["applicable"]) == (
        w.bob.terms["stroma"], w.bob.project_id, True), out
    status, out = await post(w, w.alice.actor, "/api/retrieval/suggest-term",
                             {"annotation_id": queries["background"], "k": 8})
    best = out["terms"][0]
    assert (best["term_id"], best["applicable"]) == (w.alice.terms["background"], False), out
    # A region: the project to map to must hold the image.
    region = {"image_id": w.alice.image_id, "geometry": tile_polygon(*LABELS["stroma"][1])}
    status, out = await post(w, w.alice.actor, "/api/retrieval/suggest-term",
                             {**region, "project_id": w.bob.project_id})
    assert status == 400 and "project_id" in out["error"], out
    status, out = await post(w, w.alice.actor, "/api/retrieval/suggest-term", region)
    assert status == 200 and out["project_id"] == w.alice.project_id
    assert out["terms"][0]["term_id"] == w.alice.terms["stroma"]
