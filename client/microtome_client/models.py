"""Typed records of the API, each bound to the client that fetched it.

Records are plain dataclasses (fields as the server sends them); methods that
talk to the server are ``async`` and delegate to the modules that do the work
(`pixels`, `uploads`, `annotations`).  The synchronous `Client` wraps the very
same objects (see `sync`), so the surface is written once.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import numpy as np

    from .annotations import AnnotationQuery, GeometryLike
    from .core import AsyncClient
    from .uploads import UploadResult

M = TypeVar("M", bound="Record")


@dataclass
class Record:
    """Base: ``from_json`` keeps the known fields; ``raw`` keeps the whole answer."""

    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    _client: AsyncClient | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_json(cls: type[M], data: dict[str, Any], client: AsyncClient | None = None) -> M:
        names = {f.name for f in dataclasses.fields(cls)} - {"raw", "_client"}
        return cls(**{k: v for k, v in data.items() if k in names}, raw=data, _client=client)

    @property
    def client(self) -> AsyncClient:
        if self._client is None:
            raise RuntimeError(f"this {type(self).__name__} is not bound to a client")
        return self._client


@dataclass
class User(Record):
    id: int = 0
    username: str = ""
    is_admin: bool = False
    created_at: str | None = None


@dataclass
class ApiKey(Record):
    id: int = 0
    name: str = ""
    prefix: str = ""
    created_at: str | None = None
    last_used_at: str | None = None
    revoked_at: str | None = None
    #: The secret, only in the answer that created the key.
    key: str | None = None

    async def revoke(self) -> None:
        await self.client.revoke_api_key(self.id)


@dataclass
class Member(Record):
    user_id: int = 0
    username: str = ""
    role: str = ""
    added_at: str | None = None


@dataclass
class Job(Record):
    id: int = 0
    kind: str = ""
    status: str = ""
    image_id: int | None = None
    project_id: int | None = None
    progress: float = 0.0
    error: str | None = None
    attempts: int = 0
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None

    async def refresh(self) -> Job:
        return await self.client.job(self.id)

    async def wait(self, limit_s: float = 3600.0, poll: float = 0.5) -> Job:
        """The job once it has ended (done, failed or cancelled); TimeoutError after `limit_s`."""
        job: Job = self
        deadline = asyncio.get_running_loop().time() + limit_s
        while job.status not in ("done", "failed", "cancelled"):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"job {self.id} still {job.status} after {limit_s:g} s")
            await asyncio.sleep(poll)
            job = await job.refresh()
        return job


@dataclass
class ShareLink(Record):
    id: int = 0
    image_id: int | None = None
    project_id: int | None = None
    created_at: str | None = None
    expires_at: str | None = None
    revoked_at: str | None = None
    token: str | None = None
    url: str | None = None

    async def revoke(self) -> None:
        await self.client.revoke_share_link(self.id)


@dataclass
class Term(Record):
    id: int = 0
    project_id: int = 0
    name: str = ""
    color: str = ""
    parent_id: int | None = None
    created_at: str | None = None
    updated_at: str | None = None

    async def update(self, **changes: Any) -> Term:
        """Change ``name``, ``color`` or ``parent_id`` (managers)."""
        return await self.client.update_term(self.project_id, self.id, **changes)

    async def delete(self, force: bool = False) -> None:
        await self.client.delete_term(self.project_id, self.id, force=force)


@dataclass
class Level:
    width: int
    height: int
    downsample: int


@dataclass
class Channel:
    label: str
    color: str
    active: bool = True
    inverted: bool = False
    window: dict[str, float] = field(default_factory=dict)


@dataclass
class ImageMetadata:
    """What the tile server knows about an image's pixels (``/images/{id}/metadata``)."""

    width: int
    height: int
    kind: str  # "rgb" (8-bit brightfield) or "nd" (channels of any dtype)
    dtype: str
    tile_size: int
    levels: list[Level]
    pixel_size_um: list[float] | None
    z_spacing_um: float | None
    size_t: int
    size_c: int
    size_z: int
    channels: list[Channel]
    associated: list[str]
    version: str
    original: Any = None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ImageMetadata:
        size = d.get("size") or {}
        return cls(width=d["width"], height=d["height"], kind=d["kind"], dtype=d["dtype"],
                   tile_size=d["tile_size"], levels=[Level(**lv) for lv in d["levels"]],
                   pixel_size_um=d.get("pixel_size_um"), z_spacing_um=d.get("z_spacing_um"),
                   size_t=size.get("t", 1), size_c=size.get("c", 1), size_z=size.get("z", 1),
                   channels=[Channel(**c) for c in d.get("channels", [])],
                   associated=list(d.get("associated", [])), version=str(d.get("version", "")),
                   original=d.get("original"))

    @property
    def mpp(self) -> float | None:
        """Microns per pixel at full resolution (x), if known."""
        return float(self.pixel_size_um[0]) if self.pixel_size_um else None


@dataclass
class Annotation(Record):
    id: int = 0
    geometry: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    bbox: list[float] | None = None

    @classmethod
    def from_feature(cls, feature: dict[str, Any], client: AsyncClient | None = None,
                     image_id: int | None = None) -> Annotation:
        props = dict(feature.get("properties") or {})
        if image_id is not None:
            props.setdefault("image_id", image_id)
        return cls(id=int(feature["id"]), geometry=feature["geometry"], properties=props,
                   bbox=feature.get("bbox"), raw=feature, _client=client)

    @property
    def image_id(self) -> int | None:
        return self.properties.get("image_id")

    @property
    def terms(self) -> list[int]:
        return list(self.properties.get("terms") or [])

    @property
    def data(self) -> dict[str, Any]:
        """Free properties (only in full records: `refresh` a viewport result to get them)."""
        return dict(self.properties.get("data") or {})

    @property
    def user_id(self) -> int | None:
        return self.properties.get("user_id")

    @property
    def shape(self) -> Any:
        """The geometry as a shapely object (needs the ``shapely`` extra)."""
        import shapely.geometry

        return shapely.geometry.shape(self.geometry)

    def to_feature(self) -> dict[str, Any]:
        return {"type": "Feature", "id": self.id, "geometry": self.geometry,
                "properties": self.properties}

    async def refresh(self) -> Annotation:
        """The full record (data, producer, areas) from the server."""
        return await self.client.annotation(self.id)

    async def update(self, geometry: GeometryLike | None = None, *,
                     terms: Sequence[int] | None = None,
                     data: dict[str, Any] | None = None) -> Annotation:
        return await self.client.update_annotation(self.id, geometry, terms=terms, data=data)

    async def delete(self) -> None:
        await self.client.delete_annotation(self.id)

    async def crop(self, fmt: str = "png", **params: Any) -> bytes:
        return await self.client.annotation_image(self.id, "crop", fmt, **params)

    async def mask(self, fmt: str = "png", **params: Any) -> bytes:
        return await self.client.annotation_image(self.id, "mask", fmt, **params)


@dataclass
class Image(Record):
    id: int = 0
    name: str = ""
    source_filename: str = ""
    format: str | None = None
    width: int | None = None
    height: int | None = None
    levels: int | None = None
    pixel_size_um: float | None = None
    channels: list[Any] = field(default_factory=list)
    checksum: str | None = None
    status: str = ""
    version: str = ""
    created_at: str | None = None
    updated_at: str | None = None
    urls: dict[str, str] = field(default_factory=dict)
    _meta: ImageMetadata | None = field(default=None, repr=False, compare=False)

    # -- record ----------------------------------------------------------------------
    async def refresh(self) -> Image:
        return await self.client.image(self.id)

    async def rename(self, name: str) -> Image:
        return Image.from_json(await self.client.t.json(
            "PATCH", f"/api/images/{self.id}", json={"name": name}), self.client)

    async def delete(self) -> None:
        await self.client.t.request("DELETE", f"/api/images/{self.id}")

    def jobs(self, page_size: int = 100) -> AsyncIterator[Job]:
        return self.client.paginate(f"/api/images/{self.id}/jobs", Job, page_size=page_size)

    async def retry(self) -> Job:
        """Convert a failed image again from the original the server kept (the new job)."""
        return Job.from_json(await self.client.t.json(
            "POST", f"/api/images/{self.id}/retry"), self.client)

    async def signed_url(self, expires_in: int = 3600) -> dict[str, Any]:
        """A short-lived token for tile/IIIF/DZI URLs of this image (for other viewers)."""
        return await self.client.t.json(  # type: ignore[no-any-return]
            "POST", f"/api/images/{self.id}/signed-url", json={"expires_in": expires_in})

    # -- pixels (see `pixels`) -------------------------------------------------------
    async def fetch_metadata(self) -> ImageMetadata:
        if self._meta is None or self._meta.version != self.version:
            doc = await self.client.t.json("GET", f"/images/{self.id}/metadata")
            self._meta = ImageMetadata.from_json(doc)
        return self._meta

    @property
    def metadata(self) -> Any:
        """Awaitable `ImageMetadata` (the sync client returns it directly)."""
        return self.fetch_metadata()

    async def region(self, x: int, y: int, w: int, h: int, *, level: int | None = None,
                     scale: float | None = None, channels: Sequence[int] | None = None,
                     z: int | None = None, t: int | None = None, format: str = "auto",
                     magnification: float | None = None, max_pixels: int = 1 << 30
                     ) -> np.ndarray:
        """Pixels of the level-0 rectangle (x, y, w, h) as a (height, width, channels)
        array: at a stored ``level``, or resampled to ``scale`` (output pixels per
        level-0 pixel) or to an objective ``magnification``.  RGB images come back as
        uint8 RGB; others in their stored dtype (``format`` "png"/"jpg" renders 8-bit
        colour instead).  A region not inside the image raises the server's `BadRequest`.
        """
        from .pixels import read_region

        return await read_region(self, x, y, w, h, level=level, scale=scale,
                                 channels=channels, z=z, t=t, fmt=format,
                                 max_pixels=max_pixels, magnification=magnification)

    async def thumbnail(self, size: int = 256) -> np.ndarray:
        from .pixels import thumbnail

        return await thumbnail(self, size)

    def tiles(self, level: int = 0, *, channels: Sequence[int] | None = None,
              z: int | None = None, t: int | None = None, format: str = "auto"
              ) -> AsyncIterator[tuple[tuple[int, int, int, int], np.ndarray]]:
        from .pixels import iter_tiles

        return iter_tiles(self, level, channels=channels, z=z, t=t, fmt=format)

    async def download_original(self, path: str | Path) -> Path:
        from .pixels import download_original

        return await download_original(self, Path(path))

    # -- annotations (see `annotations`) -------------------------------------------
    def annotations(self, *, bbox: Sequence[float] | None = None,
                    terms: Iterable[int] | None = None, users: Iterable[int] | None = None,
                    kinds: Iterable[str] | None = None, project: int | None = None,
                    page_size: int = 1000) -> AnnotationQuery:
        from .annotations import AnnotationQuery

        return AnnotationQuery(self.client, self.id, bbox=bbox, terms=terms, users=users,
                               kinds=kinds, project=project, page_size=page_size)

    async def create_annotation(self, geometry: GeometryLike, *,
                                terms: Sequence[int | Term] = (),
                                data: dict[str, Any] | None = None,
                                project: int | None = None, **opts: Any) -> Annotation:
        from .annotations import create_one

        return await create_one(self, geometry, terms=terms, data=data, project=project,
                                **opts)

    async def create_annotations(self, items: Iterable[Any], *,
                                 terms: Sequence[int | Term] = (),
                                 project: int | None = None, batch_size: int = 5000,
                                 **opts: Any) -> list[int]:
        from .annotations import create_many

        return await create_many(self, items, terms=terms, project=project,
                                 batch_size=batch_size, **opts)

    async def delete_annotations(self, ids: Iterable[int | Annotation]) -> int:
        from .annotations import delete_many

        return await delete_many(self, ids)

    async def search_annotations(self, geometry: GeometryLike, predicate: str = "intersects",
                                 **filters: Any) -> list[Annotation]:
        from .annotations import search

        return await search(self, geometry, predicate, **filters)

    async def annotation_counts(self, **filters: Any) -> dict[str, Any]:
        from .annotations import filter_params

        return await self.client.t.json(  # type: ignore[no-any-return]
            "GET", f"/api/images/{self.id}/annotations/counts", params=filter_params(**filters))

    async def annotation_stats(self, **filters: Any) -> dict[str, Any]:
        from .annotations import filter_params

        return await self.client.t.json(  # type: ignore[no-any-return]
            "GET", f"/api/images/{self.id}/annotations/stats", params=filter_params(**filters))

    async def export_annotations(self, path: str | Path, *, project: int | None = None
                                 ) -> Path:
        from .annotations import export_geojson

        return await export_geojson(self, Path(path), project=project)

    async def import_annotations(self, path: str | Path, **opts: Any) -> dict[str, Any]:
        from .annotations import import_geojson

        return await import_geojson(self, Path(path), **opts)

    async def terms(self) -> list[Term]:
        rows = await self.client.t.json("GET", f"/api/images/{self.id}/terms")
        return [Term.from_json(r, self.client) for r in rows]


@dataclass
class Project(Record):
    id: int = 0
    name: str = ""
    description: str = ""
    public: bool = False
    role: str | None = None
    image_count: int = 0
    created_at: str | None = None
    updated_at: str | None = None

    async def refresh(self) -> Project:
        return await self.client.project(self.id)

    async def update(self, **changes: Any) -> Project:
        """Change ``name``, ``description`` or ``public`` (managers)."""
        return Project.from_json(await self.client.t.json(
            "PATCH", f"/api/projects/{self.id}", json=changes), self.client)

    async def delete(self) -> None:
        await self.client.t.request("DELETE", f"/api/projects/{self.id}")

    def images(self, *, q: str | None = None, status: str | None = None,
               sort: str | None = None, page_size: int = 100) -> AsyncIterator[Image]:
        params = {k: v for k, v in (("q", q), ("status", status), ("sort", sort)) if v}
        return self.client.paginate(f"/api/projects/{self.id}/images", Image, params,
                                    page_size=page_size)

    async def add_image(self, image: int | Image) -> Image:
        iid = image.id if isinstance(image, Image) else int(image)
        return Image.from_json(await self.client.t.json(
            "POST", f"/api/projects/{self.id}/images", json={"image_id": iid}), self.client)

    async def remove_image(self, image: int | Image) -> None:
        iid = image.id if isinstance(image, Image) else int(image)
        await self.client.t.request("DELETE", f"/api/projects/{self.id}/images/{iid}")

    def members(self, page_size: int = 100) -> AsyncIterator[Member]:
        return self.client.paginate(f"/api/projects/{self.id}/members", Member,
                                    page_size=page_size)

    async def add_member(self, username: str, role: str = "viewer") -> Member:
        return Member.from_json(await self.client.t.json(
            "POST", f"/api/projects/{self.id}/members",
            json={"username": username, "role": role}), self.client)

    async def set_member_role(self, user: int | User | Member, role: str) -> Member:
        uid = user.user_id if isinstance(user, Member) else getattr(user, "id", user)
        return Member.from_json(await self.client.t.json(
            "PUT", f"/api/projects/{self.id}/members/{uid}", json={"role": role}), self.client)

    async def remove_member(self, user: int | User | Member) -> None:
        uid = user.user_id if isinstance(user, Member) else getattr(user, "id", user)
        await self.client.t.request("DELETE", f"/api/projects/{self.id}/members/{uid}")

    async def terms(self) -> list[Term]:
        rows = await self.client.t.json("GET", f"/api/projects/{self.id}/terms")
        return [Term.from_json(r, self.client) for r in rows]

    async def create_term(self, name: str, color: str | None = None,
                          parent: int | Term | None = None) -> Term:
        body: dict[str, Any] = {"name": name}
        if color is not None:
            body["color"] = color
        if parent is not None:
            body["parent_id"] = parent.id if isinstance(parent, Term) else parent
        return Term.from_json(await self.client.t.json(
            "POST", f"/api/projects/{self.id}/terms", json=body), self.client)

    async def term(self, name: str, *, create: bool = False, color: str | None = None) -> Term:
        """The term called ``name`` (case-insensitive); with ``create``, made if missing."""
        for term in await self.terms():
            if term.name.lower() == name.lower():
                return term
        if not create:
            from .errors import NotFound

            raise NotFound(404, f"no term {name!r} in project {self.id}")
        return await self.create_term(name, color)

    async def share(self, expires_in: int = 7 * 86400) -> ShareLink:
        return await self.client.create_share_link(project=self.id, expires_in=expires_in)

    async def upload(self, paths: str | Path | Iterable[str | Path], *, wait: bool = True,
                     progress: bool = True, parallel: int = 3, **opts: Any
                     ) -> list[UploadResult]:
        from .uploads import upload_files

        return await upload_files(self.client, self.id, paths, wait=wait, progress=progress,
                                  parallel=parallel, **opts)
