"""Query-string and body parsing for the annotation API (no database, no I/O)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from microtome.pyramid.errors import InvalidRequest

from .geometry import KINDS
from .query import Box, Filters

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off", "")


def flag(q: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = q.get(name)
    if raw is None:
        return default
    if raw.lower() in TRUE:
        return True
    if raw.lower() in FALSE:
        return False
    raise InvalidRequest(f"{name} must be true or false", {"field": name})


def integer(q: Mapping[str, str], name: str, default: int | None, lo: int, hi: int
            ) -> int | None:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    try:
        v = int(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be an integer", {"field": name}) from None
    if not lo <= v <= hi:
        raise InvalidRequest(f"{name} must be between {lo} and {hi}", {"field": name})
    return v


def number(q: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    try:
        v = float(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be a number", {"field": name}) from None
    if not math.isfinite(v) or not lo <= v <= hi:
        raise InvalidRequest(f"{name} must be between {lo} and {hi}", {"field": name})
    return v


def id_list(q: Mapping[str, str], name: str) -> tuple[int, ...]:
    raw = q.get(name)
    if not raw:
        return ()
    try:
        ids = tuple(int(v) for v in raw.split(","))
    except ValueError:
        raise InvalidRequest(f"{name} must be a comma-separated list of ids",
                             {"field": name}) from None
    if len(ids) > 1000 or any(not 0 < v < 2**63 for v in ids):
        raise InvalidRequest(f"{name}: at most 1000 positive ids", {"field": name})
    return ids


def bbox(q: Mapping[str, str]) -> Box | None:
    """`bbox=x0,y0,x1,y1` in level-0 image pixels (origin top-left, y down)."""
    raw = q.get("bbox")
    if not raw:
        return None
    try:
        parts = [float(v) for v in raw.split(",")]
    except ValueError:
        raise InvalidRequest("bbox must be x0,y0,x1,y1 (numbers)") from None
    if len(parts) != 4 or not all(math.isfinite(v) for v in parts):
        raise InvalidRequest("bbox must be x0,y0,x1,y1 (finite numbers)")
    x0, y0, x1, y1 = parts
    if x1 < x0 or y1 < y0:
        raise InvalidRequest("bbox must have x0 <= x1 and y0 <= y1")
    return (x0, y0, x1, y1)


def filters(q: Mapping[str, str]) -> Filters:
    kinds = tuple(k for k in (q.get("kind") or "").split(",") if k)
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise InvalidRequest(f"unknown kind {bad[0]!r}", {"kinds": list(KINDS), "field": "kind"})
    producer = q.get("producer")
    return Filters(term_ids=id_list(q, "term"), user_ids=id_list(q, "user"), kinds=kinds,
                   producer=producer if producer else None,
                   project_id=integer(q, "project", None, 1, 2**63 - 1),
                   untermed=flag(q, "untermed"), **more_filters(q))


STATUSES = ("pending", "accepted", "rejected")
MAX_PROP_PATH = 200
#: As long as a property value may be (catalog/properties.py).
MAX_PROP_VALUE = 2000


def when(q: Mapping[str, str], name: str) -> dt.datetime | None:
    """An ISO 8601 date or date-time; without a zone it is UTC."""
    raw = q.get(name)
    if not raw:
        return None
    try:
        v = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be an ISO 8601 date or date-time",
                             {"field": name}) from None
    return v if v.tzinfo else v.replace(tzinfo=dt.UTC)


def _layers(raw: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    users: list[int] = []
    runs: list[int] = []
    for part in raw.split(","):
        if not part:
            continue
        kind, _, num = part.partition(":")
        if kind not in ("user", "analysis") or not num.isdigit() or len(num) > 18:
            raise InvalidRequest("layers must be a comma-separated list of user:ID and "
                                 "analysis:ID (user:0 = no author)", {"field": "layers"})
        (users if kind == "user" else runs).append(int(num))
    return tuple(users), tuple(runs)


def more_filters(q: Mapping[str, str]) -> dict[str, Any]:
    """Review, layer, date and property-range filters (keyword arguments of Filters)."""
    statuses = tuple(s for s in (q.get("status") or "").split(",") if s)
    bad = [s for s in statuses if s not in STATUSES]
    if bad:
        raise InvalidRequest(f"unknown status {bad[0]!r}",
                             {"field": "status", "statuses": list(STATUSES)})
    out: dict[str, Any] = {"statuses": statuses, "analysis_ids": id_list(q, "analysis"),
                           "created_from": when(q, "from"), "created_to": when(q, "to")}
    if "layers" in q:
        out["layer_users"], out["layer_analyses"] = _layers(q["layers"])
        out["layers_set"] = True
    prop = q.get("prop")
    if prop:
        path = tuple(prop.split("."))
        if len(prop) > MAX_PROP_PATH or not all(path) or not prop.isprintable():
            raise InvalidRequest("prop must be a property name, or a dotted path such as "
                                 "measurements.area", {"field": "prop"})
        lo = number(q, "prop_min", -math.inf, -math.inf, math.inf) if q.get("prop_min") else None
        hi = number(q, "prop_max", math.inf, -math.inf, math.inf) if q.get("prop_max") else None
        value = q.get("prop_value")
        if value is not None and (len(value) > MAX_PROP_VALUE or not value.isprintable()):
            raise InvalidRequest(f"prop_value must be printable text of at most "
                                 f"{MAX_PROP_VALUE} characters", {"field": "prop_value"})
        out.update(prop=path, prop_min=lo, prop_max=hi, prop_value=value or None)
    elif q.get("prop_min") or q.get("prop_max") or q.get("prop_value"):
        raise InvalidRequest("prop_min, prop_max and prop_value need prop", {"field": "prop"})
    return out


def body_filters(body: dict[str, Any]) -> Filters:
    """The same filters from a JSON body (search)."""
    q: dict[str, str] = {}
    for key in ("term", "user"):
        if key in body:
            v = body[key]
            items = v if isinstance(v, list) else [v]
            if not all(isinstance(x, int) and not isinstance(x, bool) for x in items):
                raise InvalidRequest(f"{key} must be an id or a list of ids")
            q[key] = ",".join(str(x) for x in items)
    if "kind" in body:
        v = body["kind"]
        items = v if isinstance(v, list) else [v]
        if not all(isinstance(x, str) for x in items):
            raise InvalidRequest("kind must be a string or a list of strings")
        q["kind"] = ",".join(items)
    for key, typ in (("producer", str), ("project", int)):
        value = body.get(key)
        if value is not None:
            if not isinstance(value, typ) or isinstance(value, bool):
                raise InvalidRequest(f"{key} must be a {'string' if typ is str else 'number'}")
            q[key] = str(value)
    if "untermed" in body:
        q["untermed"] = "true" if body["untermed"] else "false"
    return filters(q)
