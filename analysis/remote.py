"""A `Raster` over the server's HTTP API (the Python client): what workers read."""

from __future__ import annotations

import functools
import pickle
import threading
from pathlib import Path
from typing import Any

import numpy as np

from .errors import AnalysisError
from .raster import LevelInfo, LevelsRaster


class ClientRaster(LevelsRaster):
    """Pixels of one catalogued image through ``microtome_client`` (sync `Client` image)."""

    def __init__(self, image: Any, server: tuple[str, str] | None = None) -> None:
        #: (URL, API key): with it the raster pickles as (URL, key, image id) and a
        #: dask cluster worker reads its own pixels through its own client.
        self._server = server
        meta = image.metadata
        if meta.kind != "rgb":
            raise AnalysisError(f"image {image.id}: not an RGB brightfield image")
        self._image = image
        self._levels = tuple(LevelInfo(lv.width, lv.height, float(lv.downsample))
                             for lv in meta.levels)
        ps = meta.pixel_size_um
        self._mpp = (float(ps[0]) + float(ps[1])) / 2 if ps else None

    def read(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        lv = self._levels[level]
        if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > lv.width or y + h > lv.height:
            raise ValueError("region outside level")
        d = int(lv.downsample)
        # The client takes level-0 rectangles; this one maps back onto exactly
        # the asked level pixels (the last column/row may be partial at level 0).
        x0, y0 = x * d, y * d
        w0, h0 = min(w * d, self.width - x0), min(h * d, self.height - y0)
        out = np.asarray(self._image.region(x0, y0, w0, h0, level=level))[..., :3]
        if out.shape[:2] != (h, w):
            raise AnalysisError(f"server answered {out.shape[:2]} pixels for {h}x{w}")
        return np.ascontiguousarray(out, dtype=np.uint8)

    def __reduce__(self) -> tuple[object, tuple[str, str, int]]:
        if self._server is None:
            raise pickle.PicklingError("a ClientRaster without its server's URL and key "
                                       "cannot be sent to another process")
        return (open_client_raster, (*self._server, int(self._image.id)))


_CLIENTS: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()


@functools.lru_cache(maxsize=8)
def open_client_raster(url: str, api_key: str, image_id: int) -> ClientRaster:
    """A `ClientRaster` in this process (a dask cluster worker): one client per
    server, kept open for the process' lifetime."""
    from microtome_client import Client

    with _LOCK:
        client = _CLIENTS.get((url, api_key))
        if client is None:
            client = _CLIENTS[(url, api_key)] = Client(url, api_key=api_key).__enter__()
    return ClientRaster(client.image(image_id), (url, api_key))

def model_loader(client: Any) -> Any:
    """``ctx.load_model`` on a worker: the model an earlier analysis saved, by its id,
    through the API (the server checked at submission that the asker may read it)."""
    def load(ref: Any) -> bytes:
        from microtome_client import NotFound

        if isinstance(ref, bool) or not isinstance(ref, int):
            raise AnalysisError(f"model {str(ref)[:100]!r}: on a server, give the id of an "
                                "earlier pixel-classifier analysis")
        try:
            return bytes(client.analysis_model(ref))
        except NotFound:
            raise AnalysisError(f"model {ref}: analysis {ref} has no saved model (deleted "
                                "since this run was asked?)") from None
    return load


def project_terms(image: Any, project_id: int | None) -> Any:
    """``ctx.terms`` on a worker: the terms of the project the results go to."""
    from .training import TermRef

    def terms() -> list[TermRef]:
        return [TermRef(t.id, t.name, t.color) for t in image.terms()
                if project_id is None or t.project_id == project_id]
    return terms


def model_path(results: str | Path) -> Path:
    """Where a run that trains writes its model, beside its results file."""
    return Path(results).with_name("model.npz")
