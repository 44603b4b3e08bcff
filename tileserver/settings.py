"""The tile server's settings: a section of the one `core.settings.Settings`."""

from __future__ import annotations

from microtome.core.settings import TileSettings

__all__ = ["TileSettings"]
