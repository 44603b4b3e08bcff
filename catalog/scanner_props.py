"""Image properties from the scanner metadata the converters kept.

A conversion writes ``metadata/original.json`` beside the pyramid, whose
``source`` block is the normalised `converters.base.SourceInfo` (scanner as
"make model [serial]", acquisition date as ISO 8601, objective power, pixel
size).  Those become properties with source 'scanner'; a value a person set
is never overwritten by a re-conversion.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from microtome.catalog import properties

#: Property key → field of the normalised source metadata.
FIELDS = {"scanner": "scanner", "acquired": "acquired", "vendor": "vendor",
          "objective power": "objective_power", "format": "format"}


def from_source(source: dict[str, Any]) -> dict[str, str]:
    """{key: text} of the metadata fields that are present; pure."""
    out: dict[str, str] = {}
    for key, name in FIELDS.items():
        value = source.get(name)
        if value is None or value == "":
            continue
        text = properties.check_value(value if not isinstance(value, float)
                                      else round(value, 4), key)
        if text:
            out[key] = text[:properties.MAX_VALUE]
    px = source.get("pixel_size_um")
    if isinstance(px, list) and px and isinstance(px[0], (int, float)):
        out["pixel size um"] = f"{float(px[0]):.4g}"
    return out


def _read(pyramid: Path) -> dict[str, Any]:
    try:
        doc = orjson.loads((pyramid / "metadata" / "original.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    source = doc.get("source") if isinstance(doc, dict) else None
    return source if isinstance(source, dict) else {}


async def record(conn: asyncpg.Connection, image_id: int, pyramid: Path) -> int:
    """Store the scanner properties of a freshly converted image; how many."""
    values = from_source(await asyncio.to_thread(_read, pyramid))
    if not values:
        return 0
    await conn.execute(
        """INSERT INTO image_properties (image_id, key, value, source)
           SELECT $1, k, v, 'scanner' FROM unnest($2::text[], $3::text[]) AS t(k, v)
           ON CONFLICT (image_id, key) DO UPDATE SET value = excluded.value,
               updated_at = now()
           WHERE image_properties.source = 'scanner'""",
        image_id, list(values), list(values.values()))
    return len(values)
