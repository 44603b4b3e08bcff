"""Translate `ImageMeta` to and from NGFF 0.5 / zarr v3 JSON documents."""

from __future__ import annotations

from typing import Any

from .layout import Channel, ImageMeta, Level

_AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
_AXIS_UNITS = {"t": None, "c": None, "z": "micrometer", "y": "micrometer", "x": "micrometer"}


def _axes(meta: ImageMeta) -> list[dict[str, Any]]:
    out = []
    for name in meta.axes:
        axis: dict[str, Any] = {"name": name, "type": _AXIS_TYPES[name]}
        unit = _AXIS_UNITS[name]
        if unit and (meta.pixel_size_um is not None or (name == "z" and meta.z_spacing_um)):
            axis["unit"] = unit
        out.append(axis)
    return out


def _scale(meta: ImageMeta, level: Level) -> list[float]:
    px = meta.pixel_size_um or (1.0, 1.0)
    sx, sy = px[0] * level.downsample, px[1] * level.downsample
    if meta.kind == "rgb":
        return [1.0, sy, sx]
    return [1.0, 1.0, float(meta.z_spacing_um or 1.0), sy, sx]


def group_attributes(meta: ImageMeta) -> dict[str, Any]:
    """The ``attributes`` of the image group's zarr.json."""
    multiscale = {
        "name": meta.name or "image",
        "axes": _axes(meta),
        "datasets": [
            {"path": lv.path,
             "coordinateTransformations": [{"type": "scale", "scale": _scale(meta, lv)}]}
            for lv in meta.levels
        ],
        "type": "mean",
    }
    omero = {
        "channels": [
            {"label": ch.label, "color": ch.color, "active": ch.active,
             "window": {"start": ch.window_start, "end": ch.window_end,
                        "min": ch.window_min, "max": ch.window_max},
             "coefficient": 1.0, "family": "linear", "inverted": ch.inverted}
            for ch in meta.channels
        ],
        "rdefs": {"defaultT": 0, "defaultZ": meta.size_z // 2, "model": "color"},
    }
    ours = {
        "kind": meta.kind,
        "tile_size": meta.tile_size,
        "shard_size": meta.shard_size,
        "codec": meta.codec,
        "size": {"t": meta.size_t, "c": meta.size_c, "z": meta.size_z},
        "pixel_size_um": list(meta.pixel_size_um) if meta.pixel_size_um else None,
        "z_spacing_um": meta.z_spacing_um,
        "associated": list(meta.associated),
        "version": meta.version,
        "source": meta.source,
    }
    ome: dict[str, Any] = {"version": meta.ngff, "multiscales": [multiscale], "omero": omero}
    return {"ome": ome, "microtome": ours}


def array_document(meta: ImageMeta, level: Level, quality: int = 90) -> dict[str, Any]:
    """The zarr.json of one level's array (zarr v3, sharded)."""
    if meta.kind == "rgb":
        inner: list[dict[str, Any]] = [
            {"name": "transpose", "configuration": {"order": [1, 2, 0]}},
            {"name": "imagecodecs_jpeg", "configuration": {"level": quality}},
        ]
    else:
        inner = [
            {"name": "bytes", "configuration": {"endian": "little"}},
            {"name": "zstd", "configuration": {"level": 3, "checksum": False}},
        ]
    return {
        "zarr_format": 3,
        "node_type": "array",
        "shape": list(meta.array_shape(level)),
        "data_type": meta.dtype,
        "chunk_grid": {"name": "regular",
                       "configuration": {"chunk_shape": list(meta.shard_shape())}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0,
        "codecs": [{
            "name": "sharding_indexed",
            "configuration": {
                "chunk_shape": list(meta.chunk_shape()),
                "codecs": inner,
                "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                                 {"name": "crc32c"}],
                "index_location": "end",
            },
        }],
        "dimension_names": list(meta.axes),
        "attributes": {},
        "storage_transformers": [],
    }


def meta_from_attributes(attrs: dict[str, Any], level_shapes: list[tuple[int, ...]]) -> ImageMeta:
    """Rebuild `ImageMeta` from a group's attributes and each level's array shape.

    Raises KeyError/ValueError/TypeError on documents we did not write; the
    reader turns those into `StorageError`.
    """
    ome = attrs["ome"] if "ome" in attrs else attrs
    ms = ome["multiscales"][0]
    ours = attrs.get("microtome", {})
    datasets = ms["datasets"]
    h0, w0 = level_shapes[0][-2], level_shapes[0][-1]
    levels = tuple(
        Level(path=str(ds["path"]), width=int(shape[-1]), height=int(shape[-2]),
              downsample=max(1, round(w0 / max(1, int(shape[-1])))))
        for ds, shape in zip(datasets, level_shapes, strict=True)
    )
    channels = tuple(
        Channel(label=str(ch.get("label", f"C{i}")), color=str(ch.get("color", "FFFFFF")),
                window_start=float(ch.get("window", {}).get("start", 0)),
                window_end=float(ch.get("window", {}).get("end", 255)),
                window_min=float(ch.get("window", {}).get("min", 0)),
                window_max=float(ch.get("window", {}).get("max", 255)),
                active=bool(ch.get("active", True)),
                inverted=ch.get("inverted") is True)
        for i, ch in enumerate(ome.get("omero", {}).get("channels", []))
    )
    size = ours.get("size", {})
    px = ours.get("pixel_size_um")
    return ImageMeta(
        width=int(w0), height=int(h0), levels=levels,
        kind=ours.get("kind", "nd" if len(level_shapes[0]) != 3 else "rgb"),
        dtype=str(ours.get("dtype", "uint8")),
        tile_size=int(ours.get("tile_size", 256)),
        shard_size=int(ours.get("shard_size", ours.get("tile_size", 256))),
        codec=str(ours.get("codec", "unknown")),
        size_t=int(size.get("t", 1)), size_c=int(size.get("c", 3)), size_z=int(size.get("z", 1)),
        pixel_size_um=(float(px[0]), float(px[1])) if px else None,
        z_spacing_um=ours.get("z_spacing_um"),
        channels=channels,
        associated=tuple(ours.get("associated", ())),
        version=str(ours.get("version", "1")),
        name=str(ms.get("name", "")),
        source=dict(ours.get("source", {})),
        ngff=str(ome.get("version", ms.get("version", "0.4"))),
    )
