"""Wires properties, attachments, the activity store and follow mode into the app."""

from __future__ import annotations

from aiohttp import web

from microtome.catalog import api_activity, api_attachments, api_layer_colors, api_properties
from microtome.catalog.activity_store import activity_context
from microtome.catalog.db import DB_POOL
from microtome.catalog.events import EVENTS
from microtome.catalog.live import LiveHub
from microtome.catalog.live_relay import LiveRelay
from microtome.core.settings import Settings


def setup(app: web.Application, settings: Settings) -> None:
    """Call after the database context: the activity writer needs the pool."""
    app[api_activity.LIVE] = hub = LiveHub(settings.collab.follow_max_followers)
    # Live state reaches the other `serve` processes over NOTIFY (catalog/live_relay.py).
    LiveRelay(hub, app[EVENTS])
    app.cleanup_ctx.append(activity_context(DB_POOL, settings.collab.activity_retention_days))
    app.router.add_routes(api_properties.routes())
    app.router.add_routes(api_attachments.routes())
    app.router.add_routes(api_activity.routes())
    app.router.add_routes(api_layer_colors.routes())  # the viewer's saved layer colours
