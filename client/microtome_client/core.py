"""`AsyncClient`: the whole API surface, written once (the sync `Client` wraps it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from .collab import ClientCollab
from .image import Image
from .models import (
    Analysis,
    Annotation,
    ApiKey,
    App,
    Job,
    Record,
    Session,
    ShareLink,
    Term,
    TrashItem,
    User,
)
from .project import Project
from .transport import RetryPolicy, Transport

R = TypeVar("R", bound=Record)


class AsyncClient(ClientCollab):
    """A connection to one Microtome server.

    ``AsyncClient(url, api_key=...)`` or ``AsyncClient(url, username=..., password=...)``
    (the login happens on first use), or ``await client.login(user, password)``.
    Every call has a timeout (``timeout`` seconds, default 30); idempotent calls are
    retried on 503 and connection errors (``retry``).
    """

    def __init__(self, url: str, api_key: str | None = None, *, username: str | None = None,
                 password: str | None = None, timeout: float = 30.0,
                 retry: RetryPolicy | None = None, max_connections: int = 16,
                 verify: bool | str = True) -> None:
        self.t = Transport(url, api_key=api_key, timeout=timeout, retry=retry,
                           max_connections=max_connections, verify=verify)
        self._pending_login = (username, password) if username and password else None

    @property
    def url(self) -> str:
        return self.t.url

    async def __aenter__(self) -> AsyncClient:
        await self._ensure_login()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.t.aclose()

    async def _ensure_login(self) -> None:
        if self._pending_login:
            user, password = self._pending_login
            self._pending_login = None
            await self.login(user, password)

    # -- helpers ---------------------------------------------------------------------
    async def paginate(self, path: str, model: type[R], params: Mapping[str, Any] | None = None,
                       *, page_size: int = 100) -> AsyncIterator[R]:
        """Items of a ``{"items", "total", "limit", "offset"}`` list, one page at a time."""
        await self._ensure_login()
        offset = 0
        while True:
            query = {**(params or {}), "limit": page_size, "offset": offset}
            page = await self.t.json("GET", path, params=query)
            items = page.get("items", [])
            for item in items:
                yield model.from_json(item, self)
            offset += len(items)
            if not items or offset >= page.get("total", offset):
                return

    async def _get(self, model: type[R], path: str) -> R:
        await self._ensure_login()
        return model.from_json(await self.t.json("GET", path), self)

    async def _post(self, model: type[R], path: str, body: Any) -> R:
        await self._ensure_login()
        return model.from_json(await self.t.json("POST", path, json=body), self)

    async def _delete(self, path: str, params: Mapping[str, Any] | None = None) -> None:
        await self._ensure_login()
        await self.t.request("DELETE", path, params=params)

    # -- session, users, keys --------------------------------------------------------
    async def login(self, username: str, password: str) -> User:
        body = await self.t.login(username, password)
        return User.from_json(body["user"], self)

    async def logout(self) -> None:
        await self._delete("/api/session")
        self.t.csrf = None

    async def me(self) -> User:
        await self._ensure_login()
        body = await self.t.json("GET", "/api/session")
        return User.from_json(body["user"], self)

    async def tile_urls(self) -> list[str]:
        """Tile base URLs the server hands out (MICROTOME_TILE_URLS); empty: its own origin."""
        return [str(u) for u in (await self.t.json("GET", "/api/tile-urls"))["items"]]

    async def needs_setup(self) -> bool:
        return bool((await self.t.json("GET", "/api/setup"))["needs_setup"])

    async def setup(self, username: str, password: str) -> User:
        """Create the first administrator of a new server (and log in as it)."""
        body = await self.t.json("POST", "/api/setup",
                                 json={"username": username, "password": password})
        self.t.csrf = body.get("csrf_token")
        return User.from_json(body["user"], self)

    def users(self, page_size: int = 100) -> AsyncIterator[User]:
        return self.paginate("/api/users", User, page_size=page_size)

    async def user(self, user_id: int) -> User:
        return await self._get(User, f"/api/users/{int(user_id)}")

    async def create_user(self, username: str, password: str, is_admin: bool = False) -> User:
        return await self._post(User, "/api/users", {"username": username,
                                                     "password": password,
                                                     "is_admin": is_admin})

    async def delete_user(self, user: int | User) -> None:
        await self._delete(f"/api/users/{_id(user)}")

    async def change_password(self, current_password: str, new_password: str) -> None:
        """Your own password; your other sessions end (this client's stays valid)."""
        await self.t.request("POST", "/api/account/password",
                             json={"current_password": current_password,
                                   "new_password": new_password})

    async def reset_password(self, user: int | User, password: str) -> None:
        """Admin: set a user's password; every session and API key of theirs ends."""
        await self.t.request("POST", f"/api/users/{_id(user)}/password",
                             json={"password": password})

    async def set_user_admin(self, user: int | User, is_admin: bool = True) -> User:
        """Admin: make a user an administrator, or not (not yourself)."""
        return User.from_json(await self.t.json(
            "PATCH", f"/api/users/{_id(user)}", json={"is_admin": is_admin}), self)

    async def create_reset_link(self, user: int | User) -> dict[str, Any]:
        """Admin: a one-time password reset link (``url``, ``token``, ``expires_at``);
        the user's sessions and keys end and they must set a new password."""
        await self._ensure_login()
        return dict(await self.t.json("POST", f"/api/users/{_id(user)}/reset-link"))

    async def check_reset_link(self, token: str) -> dict[str, Any]:
        """Whose account a reset token resets (``username``, ``expires_at``); NotFound
        when it is unknown, used, replaced or expired (``detail.reason``)."""
        return dict(await self.t.json("POST", "/api/password-reset/check",
                                      json={"token": token}, auth=False))

    async def use_reset_link(self, token: str, new_password: str) -> None:
        """Set the password with a reset token (works once); needs no login."""
        await self.t.request("POST", "/api/password-reset",
                             json={"token": token, "new_password": new_password}, auth=False)

    def sessions(self, page_size: int = 100) -> AsyncIterator[Session]:
        """Where I am signed in (``current`` marks this client's own session)."""
        return self.paginate("/api/account/sessions", Session, page_size=page_size)

    async def sign_out_everywhere(self) -> None:
        """End every session of mine, this client's too (API keys stay)."""
        await self._delete("/api/account/sessions")

    async def set_user_disabled(self, user: int | User, disabled: bool = True) -> User:
        """Admin: disable (sessions and API keys end at once) or re-enable an account."""
        return User.from_json(await self.t.json(
            "PATCH", f"/api/users/{_id(user)}", json={"disabled": disabled}), self)

    def api_keys(self, page_size: int = 100) -> AsyncIterator[ApiKey]:
        return self.paginate("/api/api-keys", ApiKey, page_size=page_size)

    async def create_api_key(self, name: str) -> ApiKey:
        """A new key; its secret is in ``.key`` (shown once)."""
        return await self._post(ApiKey, "/api/api-keys", {"name": name})

    async def revoke_api_key(self, key: int | ApiKey) -> None:
        await self._delete(f"/api/api-keys/{_id(key)}")

    # -- projects, images, jobs ------------------------------------------------------
    def projects(self, page_size: int = 100) -> AsyncIterator[Project]:
        return self.paginate("/api/projects", Project, page_size=page_size)

    async def project(self, project: int | str | Project) -> Project:
        """A project by id, or by exact name (case-insensitive)."""
        if isinstance(project, str) and not project.isdigit():
            async for p in self.projects():
                if p.name.lower() == project.lower():
                    return p
            from .errors import NotFound

            raise NotFound(404, f"no project named {project!r}")
        return await self._get(Project, f"/api/projects/{_id(project)}")

    async def create_project(self, name: str, description: str = "",
                             public: bool = False) -> Project:
        return await self._post(Project, "/api/projects",
                                {"name": name, "description": description, "public": public})

    def images(self, *, q: str | None = None, status: str | None = None,
               sort: str | None = None, page_size: int = 100) -> AsyncIterator[Image]:
        params = {k: v for k, v in (("q", q), ("status", status), ("sort", sort)) if v}
        return self.paginate("/api/images", Image, params, page_size=page_size)

    async def image(self, image: int | Image) -> Image:
        return await self._get(Image, f"/api/images/{_id(image)}")

    def jobs(self, page_size: int = 100) -> AsyncIterator[Job]:
        return self.paginate("/api/jobs", Job, page_size=page_size)

    async def job(self, job_id: int) -> Job:
        return await self._get(Job, f"/api/jobs/{int(job_id)}")

    # -- analysis apps -----------------------------------------------------------------
    async def apps(self) -> list[App]:
        """The analysis apps installed on the server."""
        await self._ensure_login()
        doc = await self.t.json("GET", "/api/apps")
        return [App.from_json(a, self) for a in doc["items"]]

    async def analysis(self, analysis_id: int) -> Analysis:
        return await self._get(Analysis, f"/api/analyses/{int(analysis_id)}")

    async def cancel_analysis(self, analysis: int | Analysis) -> Analysis:
        return await self._post(Analysis, f"/api/analyses/{_id(analysis)}/cancel", None)

    async def delete_analysis(self, analysis: int | Analysis) -> None:
        """Delete an analysis together with all its results."""
        await self._delete(f"/api/analyses/{_id(analysis)}")

    async def analysis_model(self, analysis: int | Analysis) -> bytes:
        """The model an analysis trained (the pixel classifier's forest, a safe .npz:
        load it with ``microtome.analysis.classifier_model.loads``); `NotFound` until
        the analysis is done or if it saved none."""
        await self._ensure_login()
        resp = await self.t.request("GET", f"/api/analyses/{_id(analysis)}/model")
        return bytes(resp.content)

    async def upload_analysis_model(self, analysis: int | Analysis, data: bytes, *,
                                    attempt: int) -> dict[str, Any]:
        """Worker: store the model a claimed run trained (before finishing it)."""
        await self._ensure_login()
        return await self.t.json(  # type: ignore[no-any-return]
            "PUT", f"/api/analyses/{_id(analysis)}/model", params={"attempt": str(attempt)},
            content=bytes(data), headers={"Content-Type": "application/octet-stream"})

    # Worker side (administrators' API keys; `microtome worker` uses these).
    async def claim_analysis(self, apps: Iterable[str] | None = None,
                             worker: str = "", wait: float = 0.0) -> Analysis | None:
        """The oldest queued analysis (now 'running' for this worker), or None;
        ``wait`` seconds (at most 60) make it a long-poll: the server answers as
        soon as an analysis is queued, or None after that long."""
        await self._ensure_login()
        body: dict[str, Any] = {"apps": list(apps) if apps is not None else None}
        if worker:
            body["worker"] = worker
        if wait > 0:
            body["wait"] = min(float(wait), 60.0)
        resp = await self.t.request("POST", "/api/analysis-queue/claim", json=body)
        if resp.status_code == 204:
            return None
        return Analysis.from_json(resp.json(), self)

    async def report_analysis(self, analysis: int | Analysis, progress: float,
                              log: str = "") -> Analysis:
        """Heart-beat: progress 0..1 and log text; the answer's status may be 'cancelled'."""
        return await self._post(Analysis, f"/api/analyses/{_id(analysis)}/progress",
                                {"progress": progress, "log": log})

    async def finish_analysis(self, analysis: int | Analysis, status: str, *, attempt: int,
                              error: str = "", log: str = "", traceback: str = ""
                              ) -> Analysis:
        """End a claimed run: ``attempt`` is the claim's ``attempts``; "done" links the
        results imported with producer ``analysis:<id>/<attempt>``, "failed" removes them."""
        body: dict[str, Any] = {"status": status, "attempt": attempt, "log": log}
        if error:
            body["error"] = error[:4000]
        if traceback:
            body["traceback"] = traceback[-65536:]
        return await self._post(Analysis, f"/api/analyses/{_id(analysis)}/finish", body)

    # -- sharing ---------------------------------------------------------------------
    def share_links(self, page_size: int = 100) -> AsyncIterator[ShareLink]:
        return self.paginate("/api/share-links", ShareLink, page_size=page_size)

    async def create_share_link(self, *, image: int | Image | None = None,
                                project: int | Project | None = None,
                                expires_in: int = 7 * 86400) -> ShareLink:
        body: dict[str, Any] = {"expires_in": expires_in}
        if image is not None:
            body["image_id"] = _id(image)
        if project is not None:
            body["project_id"] = _id(project)
        return await self._post(ShareLink, "/api/share-links", body)

    async def revoke_share_link(self, link: int | ShareLink) -> None:
        await self._delete(f"/api/share-links/{_id(link)}")

    async def share_info(self, token: str) -> dict[str, Any]:
        """What a share token grants (its images), as the server describes it."""
        return await self.t.json("GET", "/api/share",  # type: ignore[no-any-return]
                                 headers={"X-Share-Token": token}, auth=False)

    # -- trash -----------------------------------------------------------------------
    def trash(self, kind: str | None = None, page_size: int = 100) -> AsyncIterator[TrashItem]:
        """Deleted projects, images and annotation sets I may restore (newest first)."""
        return self.paginate("/api/trash", TrashItem, {"kind": kind} if kind else None,
                             page_size=page_size)

    async def restore(self, item: int | TrashItem, force: bool = False) -> dict[str, Any]:
        """Put a trash item back exactly; ``force`` restores what can be when a project
        or image it belonged to was purged (the answer's ``dropped`` says what not)."""
        await self._ensure_login()
        return await self.t.json(  # type: ignore[no-any-return]
            "POST", f"/api/trash/{_id(item)}/restore",
            params={"force": "true"} if force else None)

    async def purge(self, item: int | TrashItem) -> None:
        """Remove a trash item for good (its files too)."""
        await self._delete(f"/api/trash/{_id(item)}")

    async def delete_preview(self, *, project: int | Project | None = None,
                             image: int | Image | None = None) -> dict[str, Any]:
        """What deleting this project or image would take: images, annotations, authors."""
        await self._ensure_login()
        params = ({"project_id": _id(project)} if project is not None
                  else {"image_id": _id(image)})
        return await self.t.json("GET", "/api/trash/preview",  # type: ignore[no-any-return]
                                 params=params)

    # -- terms and annotations by id -------------------------------------------------
    async def update_term(self, project_id: int, term_id: int, **changes: Any) -> Term:
        await self._ensure_login()
        return Term.from_json(await self.t.json(
            "PATCH", f"/api/projects/{project_id}/terms/{term_id}", json=changes), self)

    async def delete_term(self, project_id: int, term_id: int, force: bool = False) -> None:
        await self._delete(f"/api/projects/{project_id}/terms/{term_id}",
                           {"force": "true"} if force else None)

    async def annotation(self, annotation_id: int) -> Annotation:
        await self._ensure_login()
        return Annotation.from_feature(
            await self.t.json("GET", f"/api/annotations/{int(annotation_id)}"), self)

    async def update_annotation(self, annotation_id: int, geometry: Any = None, *,
                                terms: Iterable[int | Term] | None = None,
                                data: dict[str, Any] | None = None) -> Annotation:
        from .annotations import annotation_body

        await self._ensure_login()
        body = annotation_body(geometry, terms=terms, data=data, partial=True)
        return Annotation.from_feature(await self.t.json(
            "PATCH", f"/api/annotations/{int(annotation_id)}", json=body), self)

    async def delete_annotation(self, annotation_id: int) -> None:
        await self._delete(f"/api/annotations/{int(annotation_id)}")

    async def bulk_annotations(self, action: str, ids: Iterable[Any], *,
                               terms: Iterable[Any] | None = None,
                               reason: str | None = None) -> int:
        """accept / reject (reviewers), set_terms / delete on many annotations at once."""
        from .review import bulk

        return await bulk(self, action, ids, terms=terms, reason=reason)

    async def annotation_image(self, annotation_id: int, mode: str = "crop",
                               fmt: str = "png", **params: Any) -> bytes:
        """The annotation's crop or mask picture (``mode`` "crop" | "mask"), encoded."""
        if mode not in ("crop", "mask") or fmt not in ("png", "jpg", "webp"):
            raise ValueError("mode must be crop or mask, fmt png, jpg or webp")
        await self._ensure_login()
        resp = await self.t.request("GET", f"/api/annotations/{int(annotation_id)}/{mode}.{fmt}",
                                    params=params)
        return resp.content

    # -- retrieval -------------------------------------------------------------------
    async def retrieval_status(self) -> dict[str, Any]:
        """Whether the server offers retrieval (``enabled``; ``message`` says why not)."""
        await self._ensure_login()
        return dict(await self.t.json("GET", "/api/retrieval/status"))

    async def _retrieval_body(self, annotation: int | Annotation | None, image: int | Image | None,
                              geometry: Any, scope: str, k: int,
                              terms: Iterable[int | Term] | None = None) -> dict[str, Any]:
        from .annotations import geometry_of

        if (annotation is None) == (image is None or geometry is None):
            raise ValueError("give either an annotation, or an image and a geometry")
        await self._ensure_login()
        body: dict[str, Any] = {"scope": scope, "k": int(k)}
        if terms is not None:
            body["terms"] = [_id(t) for t in terms]
        if annotation is not None:
            body["annotation_id"] = _id(annotation)
        else:
            body["image_id"] = _id(image)
            body["geometry"] = geometry_of(geometry)[0]
        return body

    async def similar(self, annotation: int | Annotation | None = None, *,
                      image: int | Image | None = None, geometry: Any = None,
                      scope: str = "all", k: int = 10,
                      terms: Iterable[int | Term] | None = None) -> list[dict[str, Any]]:
        """The k annotations most similar to an annotation, or to a region (an image and
        a geometry: shapely or GeoJSON, level-0 pixels), among those the caller may read:
        dicts with annotation_id, image_id, image_name, score, terms and crop_url.
        ``scope``: "image", "project" or "all"; ``terms``: only annotations with one of
        these terms."""
        body = await self._retrieval_body(annotation, image, geometry, scope, k, terms)
        res = await self.t.json("POST", "/api/retrieval/similar", json=body, idempotent=True)
        return list(res["items"])

    async def suggest_terms(self, annotation: int | Annotation | None = None, *,
                            image: int | Image | None = None, geometry: Any = None,
                            scope: str = "all", k: int = 10,
                            project: int | Project | None = None) -> list[dict[str, Any]]:
        """Terms for an annotation or a region, by similarity-weighted vote of its k
        nearest readable annotations: dicts with term_id, name, score (0-1) and
        applicable, best first.  Votes for other projects' terms are carried over to the
        terms of the same name in the annotation's project (for a region: ``project``,
        default the image's only project); ``applicable`` says the term is one of them."""
        body = await self._retrieval_body(annotation, image, geometry, scope, k)
        if project is not None:
            body["project_id"] = _id(project)
        res = await self.t.json("POST", "/api/retrieval/suggest-term", json=body,
                                idempotent=True)
        return list(res["terms"])

    async def slide_search(self, annotation: int | Annotation | None = None, *,
                           image: int | Image | None = None, geometry: Any = None,
                           target: int | Image | None = None, top: int = 10
                           ) -> dict[str, Any]:
        """Where on slide ``target`` (default: the example's) the tissue looks like an
        annotation or a region: ``grid`` (window and step in level-0 px, cols, rows),
        ``scores`` (one per window, row by row) and ``top`` (best non-overlapping
        windows as GeoJSON polygons with their score)."""
        body = await self._retrieval_body(annotation, image, geometry, "all", 10)
        body["top"] = int(top)
        if target is not None:
            body["target_image_id"] = _id(target)
        return dict(await self.t.json("POST", "/api/retrieval/slide-search", json=body,
                                      idempotent=True))

    # -- uploads ---------------------------------------------------------------------
    async def upload(self, paths: str | Path | Iterable[str | Path], project: int | Project,
                     **opts: Any) -> list[Any]:
        """`Project.upload` for a project id."""
        from .uploads import upload_files

        await self._ensure_login()
        return await upload_files(self, _id(project), paths, **opts)

    async def upload_state(self, upload_id: str) -> dict[str, Any]:
        await self._ensure_login()
        return await self.t.json("GET", f"/api/uploads/{upload_id}")  # type: ignore[no-any-return]

    async def cancel_upload(self, upload_id: str) -> None:
        await self._delete(f"/api/uploads/{upload_id}")

    # -- the API document ------------------------------------------------------------
    async def openapi(self) -> dict[str, Any]:
        return await self.t.json("GET", "/api/openapi.json")  # type: ignore[no-any-return]


def _id(obj: Any) -> int:
    if isinstance(obj, Record):
        return int(obj.id)  # type: ignore[attr-defined]
    return int(obj)
