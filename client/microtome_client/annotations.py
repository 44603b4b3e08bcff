"""Annotations from shapely or GeoJSON: create, query with paging, GeoJSON in and out.

Geometries are level-0 image pixels, origin top-left, y down.  Anything with
``__geo_interface__`` (shapely, geopandas rows), a GeoJSON geometry, or a
GeoJSON Feature is accepted; a Feature's ``properties.terms`` (ids) and
``properties.data`` (or its other properties) are used when no explicit ones
are given.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from .models import Annotation, Term

if TYPE_CHECKING:
    from .core import AsyncClient
    from .image import Image

GeometryLike = Union[dict[str, Any], Any]  # noqa: UP007 (runtime alias on 3.10)
#: Largest batch the server takes in one all-or-nothing request.
MAX_BATCH = 10_000
_GEOM_TYPES = ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon",
               "MultiPolygon")


def geometry_of(obj: GeometryLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """(GeoJSON geometry, Feature properties or {}) of a shapely object, geometry or Feature."""
    if hasattr(obj, "__geo_interface__"):
        obj = obj.__geo_interface__
    if not isinstance(obj, dict):
        raise TypeError(f"not a geometry: {type(obj).__name__} (use shapely or GeoJSON)")
    if obj.get("type") == "Feature":
        geom: Any = obj.get("geometry")
        props = obj.get("properties") or {}
        geom = getattr(geom, "__geo_interface__", geom)
        if not isinstance(geom, dict):
            raise TypeError("Feature without a geometry")
        return _plain(geom), dict(props)
    if obj.get("type") not in _GEOM_TYPES:
        raise TypeError(f"unsupported geometry type {obj.get('type')!r}")
    return _plain(obj), {}


def _plain(geom: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready copy: shapely's interface uses tuples, fine for json but normalise anyway."""
    def conv(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        return float(v) if not isinstance(v, (int, float)) else v

    return {"type": geom["type"], "coordinates": conv(geom["coordinates"])}


def _term_ids(terms: Iterable[int | Term] | None) -> list[int] | None:
    if terms is None:
        return None
    return [t.id if isinstance(t, Term) else int(t) for t in terms]


def annotation_body(geometry: GeometryLike | None, *, terms: Iterable[int | Term] | None,
                    data: dict[str, Any] | None, partial: bool = False,
                    producer: str | None = None) -> dict[str, Any]:
    """The JSON of one annotation to create (or, ``partial``, the fields to change)."""
    body: dict[str, Any] = {}
    props: dict[str, Any] = {}
    if geometry is not None:
        body["geometry"], props = geometry_of(geometry)
    elif not partial:
        raise ValueError("a geometry is required")
    ids = _term_ids(terms)
    if ids is None and "terms" in props:
        ids = _term_ids(props["terms"])
    if ids is not None:
        body["terms"] = ids  # an explicit [] clears the terms of an update
    if data is None and props:
        data = props.get("data") if isinstance(props.get("data"), dict) else {
            k: v for k, v in props.items() if k not in ("terms", "id", "image_id", "kind")}
    if data is not None:
        body["data"] = data
    if producer:
        body["producer"] = producer
    if partial and not body:
        raise ValueError("nothing to change: give a geometry, terms or data")
    return body


def _write_params(repair: bool = True, clip: bool = False) -> dict[str, str]:
    return {"repair": str(repair).lower(), "clip": str(clip).lower()}


async def create_one(image: Image, geometry: GeometryLike, *, terms: Sequence[int | Term],
                     data: dict[str, Any] | None, project: int | None, repair: bool = True,
                     clip: bool = False, producer: str | None = None) -> Annotation:
    body = annotation_body(geometry, terms=terms or None, data=data, producer=producer)
    if project is not None:
        body["project_id"] = int(project)
    doc = await image.client.t.json("POST", f"/api/images/{image.id}/annotations", json=body,
                                    params=_write_params(repair, clip))
    return Annotation.from_feature(doc, image.client)


async def create_many(image: Image, items: Iterable[Any], *, terms: Sequence[int | Term],
                      project: int | None, batch_size: int, repair: bool = True,
                      clip: bool = False, producer: str | None = None) -> list[int]:
    """Ids of the new annotations, created in batches of ``batch_size``; each batch is
    all or nothing (for one all-or-nothing import of any size use `import_geojson`)."""
    batch_size = max(1, min(batch_size, MAX_BATCH))
    ids: list[int] = []
    batch: list[dict[str, Any]] = []

    async def flush() -> None:
        body: dict[str, Any] = {"annotations": batch}
        if project is not None:
            body["project_id"] = int(project)
        doc = await image.client.t.json("POST", f"/api/images/{image.id}/annotations/batch",
                                        json=body, params=_write_params(repair, clip))
        ids.extend(doc["ids"])

    for item in items:
        if isinstance(item, dict) and "geometry" in item and item.get("type") != "Feature":
            body = annotation_body(item["geometry"], terms=item.get("terms", terms or None),
                                   data=item.get("data"), producer=producer)
        else:
            body = annotation_body(item, terms=terms or None, data=None, producer=producer)
        batch.append(body)
        if len(batch) >= batch_size:
            await flush()
            batch = []
    if batch:
        await flush()
    return ids


async def delete_many(image: Image, ids: Iterable[int | Annotation]) -> int:
    todo = [a.id if isinstance(a, Annotation) else int(a) for a in ids]
    deleted = 0
    for i in range(0, len(todo), MAX_BATCH):
        doc = await image.client.t.json("POST", f"/api/images/{image.id}/annotations/delete",
                                        json={"ids": todo[i:i + MAX_BATCH]})
        deleted += int(doc["deleted"])
    return deleted


def filter_params(*, bbox: Sequence[float] | None = None, terms: Iterable[int] | None = None,
                  users: Iterable[int] | None = None, kinds: Iterable[str] | None = None,
                  project: int | None = None, producer: str | None = None,
                  untermed: bool | None = None) -> dict[str, Any]:
    """Query-string filters shared by listing, counts and stats."""
    p: dict[str, Any] = {}
    if bbox is not None:
        if len(bbox) != 4:
            raise ValueError("bbox is (x0, y0, x1, y1)")
        p["bbox"] = ",".join(repr(float(v)) for v in bbox)
    if terms is not None:
        p["term"] = ",".join(str(t) for t in (_term_ids(terms) or []))
    if users is not None:
        p["user"] = ",".join(str(getattr(u, "id", u)) for u in users)
    if kinds is not None:
        p["kind"] = ",".join(kinds)
    if project is not None:
        p["project"] = int(getattr(project, "id", project))
    if producer is not None:
        p["producer"] = producer
    if untermed is not None:
        p["untermed"] = str(untermed).lower()
    return {k: v for k, v in p.items() if v != ""}


class AnnotationQuery:
    """Annotations of an image matching filters; iterate (pages are fetched as needed)."""

    def __init__(self, client: AsyncClient, image_id: int, *, page_size: int = 1000,
                 **filters: Any) -> None:
        self.client, self.image_id = client, image_id
        self.page_size = max(1, min(int(page_size), 10_000))
        self.params = filter_params(**filters)

    async def pages(self) -> AsyncIterator[list[Annotation]]:
        after = None
        while True:
            params = {**self.params, "lod": "features", "limit": self.page_size,
                      "precision": -1}
            if after is not None:
                params["after"] = after
            doc = await self.client.t.json("GET", f"/api/images/{self.image_id}/annotations",
                                           params=params)
            yield [Annotation.from_feature(f, self.client, self.image_id)
                   for f in doc.get("features", [])]
            after = doc.get("next_after")
            if after is None:
                return

    async def __aiter__(self) -> AsyncIterator[Annotation]:
        async for page in self.pages():
            for a in page:
                yield a

    async def all(self) -> list[Annotation]:
        return [a async for a in self]

    async def count(self) -> int:
        doc = await self.client.t.json("GET", f"/api/images/{self.image_id}/annotations/counts",
                                       params=self.params)
        return int(doc["total"])

    async def to_geojson(self) -> dict[str, Any]:
        """A FeatureCollection of every match (in memory: export to a file for big sets)."""
        return {"type": "FeatureCollection",
                "features": [a.to_feature() async for a in self]}

    async def to_geodataframe(self) -> Any:
        """A geopandas GeoDataFrame (needs the ``pandas`` extra): geometry, id, terms,
        user_id, kind."""
        import geopandas
        import shapely.geometry

        rows = [{"id": a.id, "terms": a.terms, "user_id": a.user_id,
                 "kind": a.properties.get("kind"), "geometry": shapely.geometry.shape(a.geometry)}
                async for a in self]
        return geopandas.GeoDataFrame(rows, geometry="geometry", columns=[
            "id", "terms", "user_id", "kind", "geometry"])


async def search(image: Image, geometry: GeometryLike, predicate: str = "intersects",
                 **filters: Any) -> list[Annotation]:
    """Annotations that intersect / lie within / contain ``geometry``, all pages."""
    geom, _ = geometry_of(geometry)
    body: dict[str, Any] = {"geometry": geom, "predicate": predicate}
    for key, name in (("terms", "term"), ("users", "user"), ("kinds", "kind")):
        if filters.get(key) is not None:
            body[name] = list(_term_ids(filters[key]) or []) if key == "terms" \
                else list(filters[key])
    for key in ("producer", "project", "untermed"):
        if filters.get(key) is not None:
            body[key] = filters[key]
    out: list[Annotation] = []
    while True:
        doc = await image.client.t.json("POST", f"/api/images/{image.id}/annotations/search",
                                        json=body)
        out.extend(Annotation.from_feature(f, image.client, image.id)
                   for f in doc.get("features", []))
        if not doc.get("next_after"):
            return out
        body["after"] = doc["next_after"]


async def export_geojson(image: Image, path: Path, *, project: int | None = None) -> Path:
    """Stream the image's annotations (QuPath-compatible GeoJSON) into ``path``."""
    params = {"project": int(project)} if project is not None else None
    return await download(image.client, f"/api/images/{image.id}/annotations/export", path,
                          params)


async def download(client: AsyncClient, url: str, path: Path,
                   params: dict[str, Any] | None = None) -> Path:
    """Stream a GET answer into ``path`` (written whole or not at all)."""
    part = path.with_name(path.name + ".part")
    try:
        async with client.t.stream("GET", url, params=params) as resp:
            fh = await asyncio.to_thread(open, part, "wb")
            with fh:
                async for chunk in resp.aiter_bytes(1 << 20):
                    await asyncio.to_thread(fh.write, chunk)
        await asyncio.to_thread(part.replace, path)
    except BaseException:
        await asyncio.to_thread(part.unlink, True)
        raise
    return path


async def _read_file(path: Path) -> AsyncIterator[bytes]:
    fh = await asyncio.to_thread(open, path, "rb")
    try:
        while data := await asyncio.to_thread(fh.read, 1 << 20):
            yield data
    finally:
        fh.close()


async def import_geojson(image: Image, path: Path, *, project: int | None = None,
                         repair: bool = True, clip: bool = False, create_terms: bool = True,
                         producer: str | None = None) -> dict[str, Any]:
    """Send a GeoJSON file (QuPath export or ours) as one all-or-nothing import: the
    file is streamed, and an interrupted or refused import stores nothing."""
    params: dict[str, Any] = {**_write_params(repair, clip),
                              "create_terms": str(create_terms).lower()}
    if project is not None:
        params["project"] = int(project)
    if producer:
        params["producer"] = producer
    size = (await asyncio.to_thread(path.stat)).st_size
    # Never retried: the server stores all of it or nothing, once.
    return await image.client.t.json(  # type: ignore[no-any-return]
        "POST", f"/api/images/{image.id}/annotations/import", params=params,
        content=_read_file(path), headers={"Content-Type": "application/geo+json",
                                           "Content-Length": str(size)},
        timeout=max(300.0, size / 1e6))
