"""`Project`: members, images, terms, sharing and uploads of one project."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .collab import ProjectCollab
from .image import Image
from .models import Analysis, App, Member, Record, ShareLink, Term, User

if TYPE_CHECKING:
    from .uploads import UploadResult


@dataclass
class Project(ProjectCollab, Record):
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

    # -- review, table, statistics (see `review`) -------------------------------------
    async def review_status(self) -> dict[str, Any]:
        """``requires_review`` and each image's review counts."""
        return await self.client.t.json(  # type: ignore[no-any-return]
            "GET", f"/api/projects/{self.id}/review")

    async def set_requires_review(self, value: bool = True) -> dict[str, Any]:
        """Managers: annotations by non-reviewers stay pending until reviewed."""
        return await self.client.t.json(  # type: ignore[no-any-return]
            "PUT", f"/api/projects/{self.id}/review", json={"requires_review": bool(value)})

    def annotation_table(self, *, sort: str = "id", order: str = "asc",
                         **filters: Any) -> AsyncIterator[dict[str, Any]]:
        """Rows of the project's annotation table (``image=`` one of its images)."""
        from .review import table_rows

        return table_rows(self.client, f"/api/projects/{self.id}/annotations/table",
                          sort=sort, order=order, **filters)

    async def export_table(self, path: str | Path, format: str = "csv", **filters: Any
                           ) -> Path:
        from .review import export_table

        return await export_table(
            self.client, f"/api/projects/{self.id}/annotations/table/export", Path(path),
            format, filters)

    async def annotation_stats(self, **filters: Any) -> list[dict[str, Any]]:
        """Counts and areas per term per image."""
        from .review import table_params

        return (await self.client.t.json(  # type: ignore[no-any-return]
            "GET", f"/api/projects/{self.id}/annotations/stats",
            params=table_params(filters)))["items"]

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

    def analyses(self, page_size: int = 100) -> AsyncIterator[Analysis]:
        """Every analysis of the project's images, newest first (``image_name``,
        ``username`` and ``duration_s`` filled in)."""
        return self.client.paginate(f"/api/projects/{self.id}/analyses", Analysis,
                                    page_size=page_size)

    async def classifier_models(self, limit: int = 100) -> list[dict[str, Any]]:
        """Models trained by this project's done analyses, newest first: analysis_id,
        image_name, classes, training (use one as the pixel classifier's ``model``)."""
        doc = await self.client.t.json("GET", f"/api/projects/{self.id}/classifier-models",
                                       params={"limit": str(limit)})
        return list(doc["items"])

    async def apps(self) -> list[App]:
        """The installed apps, each with ``enabled`` for this project."""
        doc = await self.client.t.json("GET", f"/api/projects/{self.id}/apps")
        return [App.from_json(a, self.client) for a in doc["items"]]

    async def set_app_enabled(self, app: str | App, enabled: bool) -> App:
        """Switch an app on or off in this project (managers)."""
        name = app.name if isinstance(app, App) else app
        return App.from_json(await self.client.t.json(
            "PUT", f"/api/projects/{self.id}/apps/{name}", json={"enabled": enabled}),
            self.client)

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
