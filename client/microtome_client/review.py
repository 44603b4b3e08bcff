"""Review, the annotation table, layers, bulk actions and table exports.

The table walks keyset pages (``next`` cursors) of ``.../annotations/table``;
filters are the server's query parameters (``term``, ``user``, ``status``,
``reviewed``, ``analysis``, ``layers``, ``from``, ``to``, ``prop``,
``prop_min``, ``prop_max``, ``kind``, ``untermed``), given as keyword
arguments; lists become comma-separated values.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import AsyncClient

EXPORT_FORMATS = ("csv", "geojson", "xlsx")


def table_params(filters: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in filters.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, list | tuple | set):
            out[key] = ",".join(str(getattr(v, "id", v)) for v in value)
        else:
            out[key] = str(value)
    return out


async def table_rows(client: AsyncClient, path: str, *, sort: str = "id",
                     order: str = "asc", page_size: int = 500, **filters: Any
                     ) -> AsyncIterator[dict[str, Any]]:
    """Every row of a table (image or project), page after page."""
    await client._ensure_login()
    params = {**table_params(filters), "sort": sort, "order": order,
              "limit": str(page_size), "count": "false"}
    while True:
        page = await client.t.json("GET", path, params=params)
        for row in page["items"]:
            yield row
        if not page.get("next"):
            return
        params["after"] = page["next"]


async def export_table(client: AsyncClient, path: str, dest: Path, fmt: str,
                       filters: Mapping[str, Any]) -> Path:
    """Stream the table's export (csv, geojson or xlsx) of the filter into ``dest``."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {EXPORT_FORMATS}")
    await client._ensure_login()
    part = dest.with_name(dest.name + ".part")
    try:
        async with client.t.stream("GET", path, params={**table_params(filters),
                                                        "format": fmt}) as resp:
            fh = await asyncio.to_thread(open, part, "wb")
            with fh:
                async for chunk in resp.aiter_bytes(1 << 20):
                    await asyncio.to_thread(fh.write, chunk)
        await asyncio.to_thread(part.replace, dest)
    except BaseException:
        await asyncio.to_thread(part.unlink, True)
        raise
    return dest


async def bulk(client: AsyncClient, action: str, ids: Iterable[Any], *,
               terms: Iterable[Any] | None = None, reason: str | None = None) -> int:
    """One action ("accept", "reject", "set_terms", "delete") on many annotations."""
    await client._ensure_login()
    body: dict[str, Any] = {"action": action, "ids": [int(getattr(i, "id", i)) for i in ids]}
    if terms is not None:
        body["terms"] = [int(getattr(t, "id", t)) for t in terms]
    if reason is not None:
        body["reason"] = reason
    return int((await client.t.json("POST", "/api/annotations-bulk", json=body))["done"])
