"""Retrieval in the access matrix: every actor of the catalog's matrix against every
retrieval route, and what the answers may contain.

The world is the catalog matrix's (tests/catalog/world.py: private project A with
image I and one actor per role, an image share link, an expired link, a revoked
key) on a database with pgvector, plus two projects of a stranger: B, private,
with image J, and C, public, with image K.  I, J and K are copies of the same
pixels and carry the same boxes, so a hidden neighbour would be a perfect match
(score 1): a leak cannot hide behind a low score.

Routes: POST /api/retrieval/similar, /suggest-term, /slide-search (body by
annotation or by region), GET /api/retrieval/status.  Reindexing has no route
(`microtome reindex` is a command of the machine's operator).
"""

from __future__ import annotations

import itertools
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import DummyCookieJar
from aiohttp.test_utils import TestClient

from microtome.app import create_app
from microtome.catalog.images import register_image, storage_relpath
from microtome.retrieval import index
from tests.catalog.conftest import make_settings
from tests.catalog.conftest import small_pyramid as small_pyramid  # the matrix's image
from tests.catalog.helpers import Actor, call
from tests.catalog.test_access_matrix import BAD_CREDENTIALS, ORDER, READ_IMAGE, exp
from tests.catalog.world import World, _direct_user, build_world

#: Boxes (x0, y0, side) in level-0 pixels of the 700 x 500 matrix image; the image
#: has no pixel size, so they are described at level-0 pixels (16 to 2048 px).
BOXES = ((40, 40, 64), (300, 60, 64), (80, 320, 96), (520, 280, 128))
#: A region for the slide search: 2 windows of 384 px over the image, fast.
SEARCH_BOX = (0, 0, 384)
#: Term of each project: a name that would betray a leak of B.
TERM = {"A": "alpha", "B": "secret-b", "C": "open-c"}


def box(x0: int, y0: int, side: int) -> dict[str, Any]:
    x1, y1 = x0 + side, y0 + side
    return {"type": "Polygon",
            "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


@dataclass
class Matrix:
    client: TestClient
    world: World
    database_url: str
    #: image letter -> image id; project letter -> project id
    images: dict[str, int]
    projects: dict[str, int]
    #: image letter -> its annotation ids (in BOXES order)
    annotations: dict[str, list[int]]
    terms: dict[str, int]
    #: a share link for the whole project A (the matrix's "share" is for image I)
    project_share: Actor

    def actor(self, name: str) -> Actor:
        return self.project_share if name == "share_project" else self.world.actors[name]


#: Which images each actor may read (so which images neighbours may come from).
READABLE = {"anonymous": {"K"}, "outsider": {"K"}, "viewer": {"I", "K"},
            "contributor": {"I", "K"}, "manager": {"I", "K"}, "admin": {"I", "J", "K"},
            "share": {"I"}, "share_project": {"I"}}
#: Which projects' terms each actor may be told about.
READABLE_PROJECTS = {"anonymous": {"C"}, "outsider": {"C"}, "viewer": {"A", "C"},
                     "contributor": {"A", "C"}, "manager": {"A", "C"},
                     "admin": {"A", "B", "C"}, "share": {"A"}, "share_project": {"A"}}


@pytest.fixture
async def matrix(aiohttp_client: Any, tmp_path: Path, vector_database_url: str,
                 small_pyramid: Path) -> Matrix:
    settings = make_settings(tmp_path, vector_database_url)
    client = await aiohttp_client(create_app(settings), cookie_jar=DummyCookieJar())
    world = await build_world(client, settings, vector_database_url, small_pyramid)
    stranger = await _direct_user(vector_database_url, "stranger")
    images, projects = {"I": world.image_id}, {"A": world.project_id}
    pool = await asyncpg.create_pool(vector_database_url, min_size=1, max_size=1)
    try:
        for letter, image, public in (("B", "J", False), ("C", "K", True)):
            pid = await pool.fetchval(
                "INSERT INTO projects (name, public) VALUES ($1, $2) RETURNING id",
                f"stranger's {letter}", public)
            await pool.execute("INSERT INTO project_members VALUES ($1, $2, 'manager')",
                               pid, stranger.user_id)
            iid = await register_image(pool, name=f"slide-{image}", relpath="pending",
                                       width=700, height=500, levels=2, project_id=pid,
                                       owner_id=stranger.user_id)
            await pool.execute("UPDATE images SET storage_path = $2 WHERE id = $1", iid,
                               storage_relpath(iid))
            dst = settings.images_dir / storage_relpath(iid)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(small_pyramid, dst)
            images[image], projects[letter] = iid, pid
        terms = {letter: await pool.fetchval(
            "INSERT INTO terms (project_id, name) VALUES ($1, $2) RETURNING id",
            projects[letter], TERM[letter]) for letter in projects}
    finally:
        await pool.close()
    admin = world.actors["admin"]
    annotations = {}
    for image, letter in (("I", "A"), ("J", "B"), ("K", "C")):
        items = [{"geometry": box(*b), "terms": [terms[letter]]} for b in BOXES]
        _, out = await call(client, admin, "POST",
                            f"/api/images/{images[image]}/annotations/batch",
                            {"annotations": items, "project_id": projects[letter]},
                            expect=201)
        annotations[image] = out["ids"]
    # The admin reads everything: one query describes every annotation (12 <= the
    # 32 a request describes), so hidden ones are in the index, ready to leak.
    _, out = await call(client, admin, "POST", "/api/retrieval/similar",
                        {"annotation_id": annotations["I"][0], "k": 100}, expect=200)
    assert out["pending"] == 0 and len(out["items"]) == 3 * len(BOXES) - 1, out
    _, link = await call(client, world.actors["manager"], "POST", "/api/share-links",
                         {"project_id": world.project_id, "expires_in": 600}, expect=201)
    return Matrix(client, world, vector_database_url, images, projects, annotations,
                  terms, Actor("share_project", share=link["token"]))


PUBLIC_IMAGE = exp(200, 200, 200, 200, 200, 200, 404)  # K: public project C
HIDDEN_IMAGE = exp(401, 404, 404, 404, 404, 200, 404)  # J: private project B
EVERYONE = exp(200, 200, 200, 200, 200, 200, 200)

# (method, path, body, expectations); {a:X} the first annotation on image X, {i:X} image X.
CASES: list[tuple[str, str, Any, dict[str, int | None]]] = [
    ("GET", "/api/retrieval/status", None, EVERYONE),
    ("POST", "/api/retrieval/similar", {"annotation_id": "{a:I}"}, READ_IMAGE),
    ("POST", "/api/retrieval/similar", {"image_id": "{i:I}", "geometry": box(*BOXES[0])},
     READ_IMAGE),
    ("POST", "/api/retrieval/similar", {"annotation_id": "{a:I}", "scope": "project"},
     READ_IMAGE),
    ("POST", "/api/retrieval/similar", {"annotation_id": "{a:J}"}, HIDDEN_IMAGE),
    ("POST", "/api/retrieval/similar", {"image_id": "{i:J}", "geometry": box(*BOXES[0])},
     HIDDEN_IMAGE),
    ("POST", "/api/retrieval/similar", {"annotation_id": "{a:K}"}, PUBLIC_IMAGE),
    ("POST", "/api/retrieval/suggest-term", {"annotation_id": "{a:I}"}, READ_IMAGE),
    ("POST", "/api/retrieval/suggest-term", {"image_id": "{i:I}",
                                             "geometry": box(*BOXES[1])}, READ_IMAGE),
    ("POST", "/api/retrieval/suggest-term", {"annotation_id": "{a:J}"}, HIDDEN_IMAGE),
    ("POST", "/api/retrieval/suggest-term", {"annotation_id": "{a:K}"}, PUBLIC_IMAGE),
    ("POST", "/api/retrieval/slide-search",
     {"image_id": "{i:I}", "geometry": box(*SEARCH_BOX), "top": 2}, READ_IMAGE),
    ("POST", "/api/retrieval/slide-search",
     {"image_id": "{i:J}", "geometry": box(*SEARCH_BOX), "top": 2}, HIDDEN_IMAGE),
    # A readable example searched over a hidden slide: as if the slide did not exist.
    ("POST", "/api/retrieval/slide-search",
     {"image_id": "{i:I}", "geometry": box(*SEARCH_BOX), "target_image_id": "{i:J}",
      "top": 2}, exp(401, 404, 404, 404, 404, 200, 404)),
    ("POST", "/api/retrieval/slide-search",
     {"image_id": "{i:K}", "geometry": box(*SEARCH_BOX), "target_image_id": "{i:I}",
      "top": 2}, exp(401, 404, 200, 200, 200, 200, 404)),
]


def _fill(value: Any, m: Matrix) -> Any:
    if isinstance(value, str) and value.startswith("{a:"):
        return m.annotations[value[3]][0]
    if isinstance(value, str) and value.startswith("{i:"):
        return m.images[value[3]]
    if isinstance(value, dict):
        return {k: _fill(v, m) for k, v in value.items()}
    return value


async def test_retrieval_access_matrix(matrix: Matrix) -> None:
    """Status codes of every actor on every retrieval route (bad credentials: 401)."""
    m = matrix
    failures = []
    for method, path, body, expected in CASES:
        filled = _fill(body, m)
        for name, want in expected.items():
            status, got = await call(m.client, m.world.actors[name], method, path, filled)
            if status != want:
                failures.append(f"{name:13} {method} {path} {body}: {status} (want {want}) "
                                f"{got}")
    assert not failures, "\n".join(failures)


def _readable_annotations(m: Matrix, name: str) -> set[int]:
    return {a for image in READABLE[name] for a in m.annotations[image]}


async def test_neighbours_and_suggestions_come_only_from_what_the_caller_may_read(
        matrix: Matrix) -> None:
    """From every annotation an actor may read, in every scope: the neighbours are all
    and only the readable annotations of that scope (k is met without the hidden
    ones), and the suggested terms only the readable projects'."""
    m = matrix
    image_of = {a: image for image, ids in m.annotations.items() for a in ids}
    project_of = {"I": "A", "J": "B", "K": "C"}
    term_project = {tid: letter for letter, tid in m.terms.items()}
    failures = []
    for name, scope in itertools.product((*ORDER, "share_project"), index.SCOPES):
        actor = m.actor(name)
        readable = _readable_annotations(m, name)
        for query in sorted(readable):
            body = {"annotation_id": query, "k": 100, "scope": scope}
            _, out = await call(m.client, actor, "POST", "/api/retrieval/similar", body,
                                expect=200)
            got = {i["annotation_id"] for i in out["items"]}
            same = {a for a in readable if a != query and (
                scope == "all" or image_of[a] == image_of[query]  # one image per project
            )}
            if got != same:
                failures.append(f"{name} {scope} from {image_of[query]}: got images "
                                f"{sorted({image_of[a] for a in got})}, extra "
                                f"{sorted(got - same)}, missing {sorted(same - got)}")
            if out["pending"] != 0:
                failures.append(f"{name}: pending {out['pending']}")
            _, sug = await call(m.client, actor, "POST", "/api/retrieval/suggest-term",
                                body, expect=200)
            told = {term_project[t["term_id"]] for t in sug["terms"]}
            allowed = READABLE_PROJECTS[name] if scope == "all" else {
                project_of[image_of[query]]}
            if not told <= allowed or sug["neighbours"] != len(same):
                failures.append(f"{name} {scope}: suggested terms of {sorted(told)}, "
                                f"{sug['neighbours']} neighbours (want {len(same)})")
    assert not failures, "\n".join(failures)


async def test_a_hidden_term_filter_and_hidden_queue_reveal_nothing(matrix: Matrix) -> None:
    """Asking for B's term returns nothing to those who cannot read B; annotations of
    B waiting to be described are not counted in anyone else's `pending`."""
    m = matrix
    admin = m.world.actors["admin"]
    await call(m.client, admin, "POST", f"/api/images/{m.images['J']}/annotations/batch",
               {"annotations": [{"geometry": box(200, 200, 64), "terms": [m.terms["B"]]}],
                "project_id": m.projects["B"]}, expect=201)
    for name in ("viewer", "outsider", "share", "share_project"):
        actor = m.actor(name)
        query = min(_readable_annotations(m, name))
        _, out = await call(m.client, actor, "POST", "/api/retrieval/similar",
                            {"annotation_id": query, "terms": [m.terms["B"]], "k": 100},
                            expect=200)
        assert out["items"] == [] and out["pending"] == 0, (name, out)
    # The admin's request describes the new one: it is there to leak, and still does not.
    _, out = await call(m.client, admin, "POST", "/api/retrieval/similar",
                        {"annotation_id": m.annotations["J"][0], "terms": [m.terms["B"]],
                         "k": 100}, expect=200)
    assert len(out["items"]) == len(BOXES) and out["pending"] == 0, out
    _, out = await call(m.client, m.world.actors["viewer"], "POST",
                        "/api/retrieval/similar",
                        {"annotation_id": m.annotations["I"][0], "k": 100}, expect=200)
    assert {i["image_id"] for i in out["items"]} == {m.images["I"], m.images["K"]}


async def test_leaving_the_project_takes_its_neighbours_away(matrix: Matrix) -> None:
    m = matrix
    viewer, manager = m.world.actors["viewer"], m.world.actors["manager"]
    query = {"annotation_id": m.annotations["K"][0], "k": 100}
    _, before = await call(m.client, viewer, "POST", "/api/retrieval/similar", query,
                           expect=200)
    assert {i["image_id"] for i in before["items"]} == {m.images["I"], m.images["K"]}
    await call(m.client, manager, "DELETE",
               f"/api/projects/{m.projects['A']}/members/{viewer.user_id}", expect=204)
    _, after = await call(m.client, viewer, "POST", "/api/retrieval/similar", query,
                          expect=200)
    assert {i["image_id"] for i in after["items"]} == {m.images["K"]}
    status, _ = await call(m.client, viewer, "POST", "/api/retrieval/similar",
                           {"annotation_id": m.annotations["I"][0]})
    assert status == 404


def test_every_retrieval_route_is_in_the_matrix() -> None:
    from microtome.retrieval.openapi import PATHS

    covered = {(method.lower(), path) for method, path, _b, _e in CASES}
    documented = {(method, path) for path, ops in PATHS.items() for method in ops}
    assert documented <= covered, documented - covered
    assert set(BAD_CREDENTIALS) <= set(EVERYONE)
