"""Typed records of the API, each bound to the client that fetched it.

Records are plain dataclasses (fields as the server sends them); methods that
talk to the server are ``async`` and delegate to the modules that do the work
(`pixels`, `uploads`, `annotations`).  The synchronous `Client` wraps the very
same objects (see `sync`), so the surface is written once.  `Image` and
`Project`, the records with the most methods, have modules of their own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .collab import AnnotationCollab

if TYPE_CHECKING:
    from .annotations import GeometryLike
    from .core import AsyncClient

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
    #: An administrator disabled the account (its sessions and keys ended).
    disabled: bool = False
    #: When the account last logged in (None: never); shown to administrators.
    last_login_at: str | None = None
    #: Reset by an administrator: every request but the password change is refused
    #: (Forbidden, reason password_change_required) until a new password is set.
    must_change_password: bool = False


@dataclass
class Session(Record):
    """A browser (or client) signed in as me."""

    id: int = 0
    created_at: str | None = None
    last_seen_at: str | None = None
    expires_at: str | None = None
    #: The session of the request that listed it.
    current: bool = False


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
class App(Record):
    """An analysis app installed on the server; ``params_schema`` is a JSON Schema."""

    name: str = ""
    version: str = ""
    title: str = ""
    description: str = ""
    inputs: list[str] = field(default_factory=list)
    params_schema: dict[str, Any] = field(default_factory=dict)
    timeout: float = 0.0
    #: In a project's list (``project.apps()``): may its members run it.
    enabled: bool = True


@dataclass
class Analysis(Record):
    """One run of an app on an image (``image.analyse(...)``)."""

    id: int = 0
    image_id: int = 0
    #: Who asked for the run: the author of its results.
    user_id: int | None = None
    #: The project its results are written in.
    project_id: int | None = None
    #: The account and name of the worker that ran it (its last claim).
    executor_id: int | None = None
    executor: str | None = None
    app: str = ""
    version: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    region: dict[str, int] | None = None
    status: str = ""
    progress: float = 0.0
    log: str = ""
    error: str | None = None
    #: A failed run's traceback (only for the image's managers).
    traceback: str | None = None
    attempts: int = 0
    result_count: int | None = None
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    #: Filled in by ``project.analyses()``.
    image_name: str | None = None
    username: str | None = None
    duration_s: float | None = None

    async def refresh(self) -> Analysis:
        return await self.client.analysis(self.id)

    async def cancel(self) -> Analysis:
        return await self.client.cancel_analysis(self.id)

    async def summary(self) -> dict[str, Any]:
        """Count; per term the count and each measurement's mean and median; per
        measurement mean / median / min / max / histogram."""
        return await self.client.t.json(  # type: ignore[no-any-return]
            "GET", f"/api/analyses/{self.id}/summary")

    async def values(self, measurement: str) -> dict[int, float]:
        """One measurement of every result that has it: annotation id → value."""
        doc = await self.client.t.json("GET", f"/api/analyses/{self.id}/values",
                                       params={"measurement": measurement})
        return dict(zip(doc["ids"], doc["values"], strict=True))

    async def export(self, path: str | os.PathLike[str]) -> Path:
        """Write the analysis' results (GeoJSON, measurements included) to ``path``."""
        from .annotations import download

        return await download(self.client, f"/api/analyses/{self.id}/export", Path(path))

    async def delete(self) -> None:
        """Delete the analysis and every annotation it produced."""
        await self.client.delete_analysis(self.id)

    async def download_model(self, path: str | Path) -> Path:
        """Write the model this analysis trained to ``path`` (apply it elsewhere with
        ``microtome analyse pixel_classifier SRC --param model=PATH``)."""
        data = await self.client.analysis_model(self.id)
        await asyncio.to_thread(Path(path).write_bytes, data)
        return Path(path)

    async def wait(self, limit_s: float = 3600.0, poll: float = 0.5) -> Analysis:
        """The analysis once it has ended (done, failed or cancelled)."""
        a: Analysis = self
        deadline = asyncio.get_running_loop().time() + limit_s
        while a.status not in ("done", "failed", "cancelled"):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"analysis {self.id} still {a.status} after {limit_s:g} s")
            await asyncio.sleep(poll)
            a = await a.refresh()
        return a


@dataclass
class ShareLink(Record):
    id: int = 0
    image_id: int | None = None
    project_id: int | None = None
    created_at: str | None = None
    expires_at: str | None = None
    revoked_at: str | None = None
    #: When the link was last used (None: never).
    last_used_at: str | None = None
    token: str | None = None
    url: str | None = None

    async def revoke(self) -> None:
        await self.client.revoke_share_link(self.id)


@dataclass
class TrashItem(Record):
    """A deleted project, image or set of annotations, restorable until ``purge_after``."""

    id: int = 0
    kind: str = ""  # "project" | "image" | "annotations"
    name: str = ""
    ids: list[int] = field(default_factory=list)
    project_id: int | None = None
    image_id: int | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    deleted_at: str | None = None
    purge_after: str | None = None
    deleted_by: int | None = None
    deleted_by_name: str | None = None

    async def restore(self, force: bool = False) -> dict[str, Any]:
        return await self.client.restore(self.id, force=force)

    async def purge(self) -> None:
        await self.client.purge(self.id)


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
class Annotation(AnnotationCollab, Record):
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

    @property
    def review_status(self) -> str | None:
        return self.properties.get("review_status")

    async def review(self, action: str, *, terms: Sequence[int] | None = None,
                     reason: str | None = None, updated_at: str | None = None) -> Annotation:
        """Accept (optionally with new terms) or reject (with a reason): reviewers.
        The version reviewed is this record's ``updated_at``: if the annotation changed
        since, the server answers 409 (`Conflict`, its detail holds the current one)."""
        body: dict[str, Any] = {"action": action,
                                "updated_at": updated_at or self.properties.get("updated_at")}
        if terms is not None:
            body["terms"] = [int(getattr(t, "id", t)) for t in terms]
        if reason is not None:
            body["reason"] = reason
        return Annotation.from_feature(await self.client.t.json(
            "POST", f"/api/annotations/{self.id}/review", json=body), self.client)

    async def reviews(self) -> list[dict[str, Any]]:
        """Who reviewed it, when, and what changed."""
        return (await self.client.t.json(  # type: ignore[no-any-return]
            "GET", f"/api/annotations/{self.id}/reviews"))["items"]

    async def mask(self, fmt: str = "png", **params: Any) -> bytes:
        return await self.client.annotation_image(self.id, "mask", fmt, **params)
