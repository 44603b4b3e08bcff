"""Retrieval use cases: describe regions (on demand, bounded) and find neighbours.

No aiohttp here: the web layer passes a `PixelAccess` (opened images with the
caller's access checks, and the CPU pool) and the caller's principal.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import numpy as np
import shapely

from microtome.catalog.access import Principal
from microtome.pyramid.errors import InvalidRequest, MicrotomeError
from microtome.pyramid.reader import Pyramid

from . import index
from .crops import read_crop
from .descriptors import FAMILY, describe

log = logging.getLogger("retrieval")

#: Annotations described on demand per request at most (each is a crop read and
#: a few ms of CPU); the rest are described by later requests.
MAX_DESCRIBE = 32
#: Descriptors still missing in the scope are counted up to this bound.
MAX_PENDING_COUNT = 1000


@dataclass(frozen=True)
class PixelAccess:
    open: Callable[[int], Awaitable[Pyramid]]
    run: Callable[..., Awaitable[Any]]


def describe_geometry(pyr: Pyramid, geom: shapely.Geometry,
                      pixel_size_um: float | None) -> np.ndarray:
    """The descriptor of a region (synchronous: pixels and CPU)."""
    crop = read_crop(pyr, geom, pixel_size_um)
    return describe(crop.rgb, crop.mask)


def describe_many(pyr: Pyramid, rows: Sequence[asyncpg.Record]
                   ) -> list[tuple[int, np.ndarray | None, Any]]:
    out: list[tuple[int, np.ndarray | None, Any]] = []
    for r in rows:
        try:
            vec: np.ndarray | None = describe_geometry(
                pyr, shapely.from_wkb(r["geom"]), r["pixel_size_um"])
        except InvalidRequest:
            vec = None  # too small or too large: recorded as not describable
        except MicrotomeError as e:  # damaged pixels: not recorded, tried again later
            log.warning("cannot describe annotation %s: %s", r["id"], e)
            continue
        out.append((r["id"], vec, r["updated_at"]))
    return out


async def describe_missing(pool: asyncpg.Pool, px: PixelAccess, p: Principal | None,
                           f: index.Filter, budget: int = MAX_DESCRIBE) -> int:
    """Describe up to `budget` readable annotations of the filter that lack a fresh
    descriptor; returns how many were described."""
    rows = await index.missing(pool, p, f, budget)
    by_image: dict[int, list[asyncpg.Record]] = defaultdict(list)
    for r in rows:
        by_image[r["image_id"]].append(r)
    done = 0
    for image_id, group in by_image.items():
        try:
            pyr = await px.open(image_id)
        except MicrotomeError as e:  # pixels gone or unreadable: try again another time
            log.warning("cannot describe annotations of image %s: %s", image_id, e)
            continue
        described = await px.run(describe_many, pyr, group)
        await index.store(pool, FAMILY, described)
        done += len(described)
    return done


async def query_vector(pool: asyncpg.Pool, px: PixelAccess, *, annotation: asyncpg.Record
                       | None, image_id: int, geom: shapely.Geometry | None,
                       pixel_size_um: float | None) -> np.ndarray:
    """The descriptor to search with: the annotation's (computed and stored when
    missing) or the region's (computed, not stored)."""
    if annotation is not None:
        vec = await index.descriptor(pool, annotation["id"], FAMILY)
        if vec is not None:
            return vec
        geom = shapely.from_wkb(annotation["geom"])
    assert geom is not None
    pyr = await px.open(image_id)
    vec = await px.run(describe_geometry, pyr, geom, pixel_size_um)
    if annotation is not None:
        await index.store(pool, FAMILY, [(annotation["id"], vec, annotation["updated_at"])])
    return vec


@dataclass(frozen=True)
class Result:
    rows: list[asyncpg.Record]
    method: str
    pending: int


async def similar(pool: asyncpg.Pool, px: PixelAccess, p: Principal | None, f: index.Filter,
                  vec: np.ndarray, k: int, use_vector: bool) -> Result:
    await describe_missing(pool, px, p, f)
    rows, method = await index.nearest(pool, p, f, FAMILY, vec, k, use_vector)
    pending = await index.count_missing(pool, p, f, MAX_PENDING_COUNT)
    return Result(rows, method, pending)


def vote(rows: Sequence[asyncpg.Record]) -> dict[int, float]:
    """Terms of the neighbours weighted by similarity, as shares of the total weight
    (neighbours without a term count in the total: they are evidence too)."""
    total = 0.0
    votes: dict[int, float] = defaultdict(float)
    for r in rows:
        w = max(0.0, float(r["score"]))
        total += w
        for t in r["term_ids"]:
            votes[t] += w
    if total <= 0:
        return {}
    return {t: v / total for t, v in votes.items()}


@dataclass(frozen=True)
class Suggestion:
    term_id: int
    score: float
    #: The term is one of the target project's (it can be put on the query annotation).
    applicable: bool


def map_votes(votes: dict[int, float], terms: dict[int, Any], target: Sequence[Any]
              ) -> list[Suggestion]:
    """Votes for terms of any project, carried over to the target project's terms of the
    same name (case-insensitive): a region of project A is suggested A's own "Stroma"
    even when its neighbours carry project B's.  Terms with no namesake in the target
    stay as they are (not applicable).  Best first."""
    by_name = {str(t["name"]).casefold(): t["id"] for t in target}
    merged: dict[int, float] = defaultdict(float)
    for tid, v in votes.items():
        if tid in terms:
            merged[by_name.get(str(terms[tid]["name"]).casefold(), tid)] += v
    own = {t["id"] for t in target}
    return sorted((Suggestion(t, v, t in own) for t, v in merged.items()),
                  key=lambda s: (-s.score, s.term_id))
