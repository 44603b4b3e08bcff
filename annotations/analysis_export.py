"""GET /api/analyses/{id}/export: one analysis' results as GeoJSON.

Here rather than beside the other analysis routes: the export is the
annotations' own (streamed, measurements and terms included), filtered.
"""

from __future__ import annotations

from aiohttp import web

from microtome.annotations import geojson_io
from microtome.annotations.web import EXECUTOR
from microtome.catalog.api_analyses import visible_analysis
from microtome.catalog.db import DB_POOL


async def export_analysis(request: web.Request) -> web.StreamResponse:
    """The results of one analysis as GeoJSON (the annotation export, filtered)."""
    analysis_id = await visible_analysis(request, "viewer")
    pool = request.app[DB_POOL]
    image_id = await pool.fetchval("SELECT image_id FROM analyses WHERE id = $1", analysis_id)
    info = {r["id"]: (r["name"], r["color"]) for r in await pool.fetch(
        """SELECT t.id, t.name, t.color FROM terms t JOIN project_images pi
           ON pi.project_id = t.project_id WHERE pi.image_id = $1""", image_id)}
    resp = web.StreamResponse(headers={
        "Content-Type": "application/geo+json",
        "Content-Disposition": f'attachment; filename="analysis-{analysis_id}.geojson"'})
    resp.enable_compression()
    await resp.prepare(request)
    async for chunk in geojson_io.export_chunks(pool, image_id, None, info,
                                                request.app[EXECUTOR],
                                                analysis_id=analysis_id):
        await resp.write(chunk)
    await resp.write_eof()
    return resp


def routes() -> list[web.RouteDef]:
    return [web.get("/api/analyses/{analysis_id}/export", export_analysis)]
