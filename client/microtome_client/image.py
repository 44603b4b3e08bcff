"""`Image`: one image's record, its pixels and its annotations (see `pixels`, `annotations`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .collab import ImageCollab
from .models import Analysis, Annotation, ImageMetadata, Job, Record, Term

if TYPE_CHECKING:
    import numpy as np

    from .annotations import AnnotationQuery, GeometryLike


@dataclass
class Image(ImageCollab, Record):
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
    #: Why a failed image failed (in words a user understands).
    error: str | None = None
    #: {"id", "name"} of an earlier image of the same project made from the same file.
    duplicate_of: dict[str, Any] | None = None
    version: str = ""
    created_at: str | None = None
    updated_at: str | None = None
    urls: dict[str, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    properties: dict[str, str] = field(default_factory=dict)
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

    def analyses(self, page_size: int = 100) -> AsyncIterator[Analysis]:
        """Analyses run on this image, newest first."""
        return self.client.paginate(f"/api/images/{self.id}/analyses", Analysis,
                                    page_size=page_size)

    async def analyse(self, app: str, params: dict[str, Any] | None = None, *,
                      version: str | None = None,
                      region: tuple[int, int, int, int] | None = None,
                      project: int | None = None) -> Analysis:
        """Queue the analysis app ``app`` on this image (contributor or above).

        ``region`` is (x, y, w, h) in full-resolution pixels; wrong parameters
        raise `BadRequest` whose ``detail["fields"]`` names each one. The results
        are yours, in ``project`` (default: the image's home project, else the
        first holding it where you contribute).
        """
        body: dict[str, Any] = {"app": app, "params": params or {}}
        if project is not None:
            body["project"] = int(project)
        if version is not None:
            body["version"] = version
        if region is not None:
            x, y, w, h = region
            body["region"] = {"x": x, "y": y, "w": w, "h": h}
        return Analysis.from_json(await self.client.t.json(
            "POST", f"/api/images/{self.id}/analyses", json=body), self.client)

    async def signed_url(self, expires_in: int = 3600) -> dict[str, Any]:
        """A short-lived token for tile/IIIF/DZI URLs of this image (for other viewers)."""
        return await self.client.t.json(  # type: ignore[no-any-return]
            "POST", f"/api/images/{self.id}/signed-url", json={"expires_in": expires_in})

    # -- side-by-side viewing ---------------------------------------------------------
    async def alignment(self, other: int | Image) -> dict[str, Any]:
        """How ``other``'s level-0 pixels map onto this image's (identity when none is
        saved): ``{"tx", "ty", "rotation", "scale", "saved", ...}``."""
        oid = other.id if isinstance(other, Image) else int(other)
        return await self.client.t.json(  # type: ignore[no-any-return]
            "GET", f"/api/images/{self.id}/alignments/{oid}")

    async def set_alignment(self, other: int | Image, *, tx: float = 0.0, ty: float = 0.0,
                            rotation: float = 0.0, scale: float = 1.0) -> dict[str, Any]:
        """Save the alignment: ``other``'s pixel p lands on
        ``scale * R(rotation) * p + (tx, ty)`` here (degrees, clockwise)."""
        oid = other.id if isinstance(other, Image) else int(other)
        return await self.client.t.json(  # type: ignore[no-any-return]
            "PUT", f"/api/images/{self.id}/alignments/{oid}",
            json={"tx": tx, "ty": ty, "rotation": rotation, "scale": scale})

    async def delete_alignment(self, other: int | Image) -> None:
        oid = other.id if isinstance(other, Image) else int(other)
        await self.client.t.request("DELETE", f"/api/images/{self.id}/alignments/{oid}")

    # -- pixels (see `pixels`) -------------------------------------------------------
    async def histogram(self, level: int | None = None) -> dict[str, Any]:
        """Per-channel histograms from the server (``channels[i]["counts"]``,
        ``"percentiles"``, ``"min"``, ``"max"``, ...; see the README), of the sample
        level or of `level` (0 = full resolution)."""
        return await self.client.t.json(  # type: ignore[no-any-return]
            "GET", f"/images/{self.id}/histogram",
            params={"level": level} if level is not None else None)

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

    async def download_export(self, path: str | Path, codec: str = "zstd") -> Path:
        """The portable OME-Zarr (NGFF 0.5, specification codecs) as a zip at ``path``."""
        from .pixels import download_export

        return await download_export(self, Path(path), codec)

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

    # -- review, table, layers (see `review`) -----------------------------------------
    async def review_status(self, project: int | None = None) -> dict[str, Any]:
        """Pending / accepted / rejected counts; ``reviewed`` when nothing is pending."""
        params = {"project": str(int(project))} if project is not None else None
        return await self.client.t.json(  # type: ignore[no-any-return]
            "GET", f"/api/images/{self.id}/review", params=params)

    async def layers(self, project: int | None = None) -> list[dict[str, Any]]:
        """One layer per author and per analysis run, with counts."""
        params = {"project": str(int(project))} if project is not None else None
        return (await self.client.t.json(  # type: ignore[no-any-return]
            "GET", f"/api/images/{self.id}/annotations/layers", params=params))["items"]

    def annotation_table(self, *, sort: str = "id", order: str = "asc",
                         **filters: Any) -> AsyncIterator[dict[str, Any]]:
        """Rows of the image's annotation table (measurements, author, review state)."""
        from .review import table_rows

        return table_rows(self.client, f"/api/images/{self.id}/annotations/table",
                          sort=sort, order=order, **filters)

    async def export_table(self, path: str | Path, format: str = "csv", **filters: Any
                           ) -> Path:
        """The table's filter as CSV, GeoJSON or xlsx (``reviewed=True``: accepted only)."""
        from .review import export_table

        return await export_table(self.client, f"/api/images/{self.id}/annotations/table/export",
                                  Path(path), format, filters)
