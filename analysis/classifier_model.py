"""A trained pixel classifier as bytes that are safe to load from anyone.

The random forest is stored as its trees' arrays in a NumPy ``.npz`` archive
read with ``allow_pickle=False`` (no code runs on load, unlike a pickle), with
a JSON document beside them: the feature settings, the classes (term ids,
names, colours) and the training provenance. Loading checks everything
before a single prediction: the members and their dtypes and shapes, the
sizes (compressed and uncompressed), that every node's children lie after it
in its tree (so every path ends at a leaf and no index leaves the arrays),
that split features exist and thresholds and class weights are finite. A
tampered or corrupt artifact raises `ModelError`; a valid one predicts
exactly as the forest that was saved (sklearn's own tree code, rebuilt from
the checked arrays).

Format ``microtome-pixel-classifier`` version 1, members:

``meta``      uint8   JSON (UTF-8), see `PixelModel.meta`
``offsets``   int64   (trees + 1): tree t is nodes offsets[t]:offsets[t+1]
``left``      int32   (nodes,) child index within its tree, -1 for a leaf
``right``     int32   (nodes,)
``feature``   int32   (nodes,) split feature, -2 for a leaf
``threshold`` float64 (nodes,) go left when feature <= threshold
``missing``   uint8   (nodes,) 1: missing values go left
``value``     float64 (nodes, classes) class weights of the node
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import AnalysisError

FORMAT = "microtome-pixel-classifier"
FORMAT_VERSION = 1
#: Largest artifact accepted (bytes as stored) and largest once decompressed.
MAX_MODEL_BYTES = 256 << 20
MAX_UNPACKED_BYTES = 1 << 30
MAX_CLASSES = 250
MAX_TREES = 1000
MAX_META_BYTES = 1 << 20
_MEMBERS = {"meta": np.uint8, "offsets": np.int64, "left": np.int32, "right": np.int32,
            "feature": np.int32, "threshold": np.float64, "missing": np.uint8,
            "value": np.float64}
_LEAF, _UNDEFINED = -1, -2


class ModelError(AnalysisError):
    """The bytes are not a valid pixel-classifier model (corrupt or tampered)."""


def _bad(why: str) -> ModelError:
    return ModelError(f"not a valid pixel-classifier model: {why}")


@dataclass
class PixelModel:
    """A loaded (or freshly trained) forest and what it needs to be applied.

    ``meta`` holds: format, format_version, app, app_version, features
    ({sigma_min, sigma_max, intensity, edges, texture, channels, kind,
    n_features}), resolution (the working pixel size asked, µm or level-0 px),
    pixel_size (µm of the level it was trained at, or None), classes
    ([{id, name, color}] in class-index order) and training provenance
    ({images, annotations, pixels, per_class, trees, max_samples, ...}).
    """

    meta: dict[str, Any]
    trees: list[Any]  # sklearn.tree._tree.Tree

    @property
    def classes(self) -> list[dict[str, Any]]:
        return list(self.meta["classes"])

    @property
    def n_features(self) -> int:
        return int(self.meta["features"]["n_features"])

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class index of each row of ``x`` ((n, n_features) float32): the class of
        highest mean normalised leaf weight over the trees, as scikit-learn's forest."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise AnalysisError(f"the model expects {self.n_features} features per pixel, "
                                f"got {x.shape[-1]}")
        total = np.zeros((x.shape[0], len(self.meta["classes"])), np.float64)
        for tree in self.trees:
            p = tree.predict(x)[:, :total.shape[1]]
            norm = p.sum(axis=1, keepdims=True)
            norm[norm == 0] = 1.0
            total += p / norm
        return np.argmax(total, axis=1)


def from_forest(forest: Any, meta: dict[str, Any]) -> PixelModel:
    """A `PixelModel` of a fitted ``RandomForestClassifier`` trained on labels 0..k-1."""
    trees = [e.tree_ for e in forest.estimators_]
    return PixelModel(dict(meta), trees)


def dumps(model: PixelModel) -> bytes:
    """The artifact's bytes (a compressed .npz, no pickles)."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in
                                          ("left", "right", "feature", "threshold", "missing",
                                           "value")}
    offsets = [0]
    k = len(model.meta["classes"])
    for tree in model.trees:
        state = tree.__getstate__()
        nodes = state["nodes"]
        parts["left"].append(nodes["left_child"].astype(np.int32))
        parts["right"].append(nodes["right_child"].astype(np.int32))
        parts["feature"].append(nodes["feature"].astype(np.int32))
        parts["threshold"].append(nodes["threshold"].astype(np.float64))
        parts["missing"].append(nodes["missing_go_to_left"].astype(np.uint8)
                                if "missing_go_to_left" in (nodes.dtype.names or ())
                                else np.zeros(len(nodes), np.uint8))
        values = np.asarray(state["values"], np.float64).reshape(len(nodes), -1)
        parts["value"].append(values[:, :k])
        offsets.append(offsets[-1] + len(nodes))
    arrays = {name: np.concatenate(v) if v else np.zeros((0, k) if name == "value" else 0,
                                                         _MEMBERS[name])
              for name, v in parts.items()}
    meta = json.dumps(model.meta, ensure_ascii=False, sort_keys=True).encode()
    buf = io.BytesIO()
    members: dict[str, Any] = {"meta": np.frombuffer(meta, np.uint8),
                               "offsets": np.asarray(offsets, np.int64), **arrays}
    np.savez_compressed(buf, **members)
    return buf.getvalue()


def expected_features(sigma_min: float, sigma_max: float, channels: int) -> int:
    """Features per pixel of skimage's multiscale_basic_features (intensity, edges
    and two Hessian eigenvalues per scale and channel), scales 1, 2, 4, ..."""
    scales = int(np.floor(np.log2(sigma_max) - np.log2(sigma_min) + 1))
    return channels * scales * 4


def _meta_ok(meta: Any) -> dict[str, Any]:
    if not isinstance(meta, dict):
        raise _bad("meta is not an object")
    if meta.get("format") != FORMAT:
        raise _bad(f"format {str(meta.get('format'))[:60]!r}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise _bad(f"format version {str(meta.get('format_version'))[:20]} (this "
                   f"Microtome reads {FORMAT_VERSION})")
    f = meta.get("features")
    if not isinstance(f, dict):
        raise _bad("no feature settings")
    try:
        smin, smax = float(f["sigma_min"]), float(f["sigma_max"])
        channels, n = int(f["channels"]), int(f["n_features"])
    except (KeyError, TypeError, ValueError):
        raise _bad("incomplete feature settings") from None
    if not (smin == 1.0 and 1 <= smax <= 32 and channels == 3 and f.get("kind") == "rgb"):
        raise _bad("unsupported feature settings (RGB, sigma 1 to 1..32 only)")
    if f.get("intensity") is not True or f.get("edges") is not True \
            or f.get("texture") is not True:
        raise _bad("unsupported feature kinds")
    if n != expected_features(smin, smax, channels):
        raise _bad(f"{n} features where the settings give "
                   f"{expected_features(smin, smax, channels)}")
    res = meta.get("resolution")
    if not isinstance(res, (int, float)) or isinstance(res, bool) or not 0 < res <= 256:
        raise _bad("resolution")
    classes = meta.get("classes")
    if not isinstance(classes, list) or not 2 <= len(classes) <= MAX_CLASSES:
        raise _bad("needs 2 to 250 classes")
    names = set()
    for c in classes:
        if not isinstance(c, dict) or not isinstance(c.get("name"), str) \
                or not 1 <= len(c["name"]) <= 200:
            raise _bad("a class without a name")
        if c.get("id") is not None and (not isinstance(c["id"], int) or isinstance(c["id"], bool)
                                        or c["id"] < 1):
            raise _bad("a class id is not a positive integer")
        color = c.get("color", "#808080")
        if not (isinstance(color, str) and len(color) == 7 and color[0] == "#"
                and all(ch in "0123456789abcdefABCDEF" for ch in color[1:])):
            raise _bad("a class colour is not #rrggbb")
        if c["name"].strip().lower() in names:
            raise _bad(f"class {c['name']!r} twice")
        names.add(c["name"].strip().lower())
    return meta


def _tree_depth(left: np.ndarray, right: np.ndarray) -> int:
    """Depth of one tree whose children all lie after their parent (checked)."""
    frontier, depth = np.array([0]), 0
    while True:
        inner = frontier[left[frontier] != _LEAF]
        if not len(inner):
            return depth
        frontier = np.unique(np.concatenate([left[inner], right[inner]]))
        depth += 1


def loads(data: bytes) -> PixelModel:
    """Check ``data`` through and through and rebuild the forest; `ModelError` if
    anything is off. Never unpickles: object arrays are refused by NumPy."""
    if len(data) > MAX_MODEL_BYTES:
        raise _bad(f"{len(data)} bytes (at most {MAX_MODEL_BYTES})")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
            names = {i.filename for i in infos}
            if names != {f"{k}.npy" for k in _MEMBERS} or len(infos) != len(_MEMBERS):
                raise _bad("unexpected members " + ", ".join(sorted(names))[:200])
            if sum(i.file_size for i in infos) > MAX_UNPACKED_BYTES:
                raise _bad("too large once unpacked")
            for i in infos:  # a header may not claim more than its member holds
                with z.open(i) as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                    elif version == (2, 0):
                        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                    else:
                        raise _bad(f"{i.filename}: .npy version {version}")
                if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize > i.file_size:
                    raise _bad(f"{i.filename} claims more than it holds")
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in _MEMBERS}
    except ModelError:
        raise
    except Exception as e:  # zip, npy header, pickle refused: all mean "not a model"
        raise _bad(f"{type(e).__name__}: {str(e)[:200]}") from None
    for name, dt in _MEMBERS.items():
        if arrays[name].dtype != np.dtype(dt):
            raise _bad(f"{name} is {arrays[name].dtype}, not {np.dtype(dt)}")
    if arrays["meta"].ndim != 1 or len(arrays["meta"]) > MAX_META_BYTES:
        raise _bad("meta")
    try:
        meta = _meta_ok(json.loads(arrays["meta"].tobytes().decode()))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _bad("meta is not JSON") from None
    k, n_features = len(meta["classes"]), int(meta["features"]["n_features"])
    offsets = arrays["offsets"]
    left, right, feature = arrays["left"], arrays["right"], arrays["feature"]
    threshold, missing, value = arrays["threshold"], arrays["missing"], arrays["value"]
    total = len(left)
    if offsets.ndim != 1 or not 2 <= len(offsets) <= MAX_TREES + 1 or offsets[0] != 0 \
            or offsets[-1] != total or (np.diff(offsets) < 1).any():
        raise _bad("tree offsets")
    if any(a.shape != (total,) for a in (left, right, feature, threshold, missing)) \
            or value.shape != (total, k):
        raise _bad("node arrays of different lengths")
    if not np.isfinite(value).all() or (value < 0).any() or (missing > 1).any():
        raise _bad("node values")
    from sklearn.tree._tree import NODE_DTYPE, Tree

    trees = []
    for t in range(len(offsets) - 1):
        a, b = int(offsets[t]), int(offsets[t + 1])
        n = b - a
        lft, rgt, feat, thr = left[a:b], right[a:b], feature[a:b], threshold[a:b]
        leaf = lft == _LEAF
        if not np.array_equal(leaf, rgt == _LEAF):
            raise _bad(f"tree {t}: a node with one child")
        idx = np.arange(n)
        inner = ~leaf
        if ((lft[inner] <= idx[inner]) | (lft[inner] >= n) | (rgt[inner] <= idx[inner])
                | (rgt[inner] >= n)).any():
            raise _bad(f"tree {t}: a child index outside the tree or before its parent")
        if ((feat[inner] < 0) | (feat[inner] >= n_features)).any():
            raise _bad(f"tree {t}: a split on a feature that does not exist")
        if not np.isfinite(thr[inner]).all():
            raise _bad(f"tree {t}: a threshold that is not a number")
        nodes = np.zeros(n, dtype=NODE_DTYPE)
        nodes["left_child"], nodes["right_child"] = lft, rgt
        nodes["feature"] = np.where(leaf, _UNDEFINED, feat)
        nodes["threshold"] = np.where(leaf, float(_UNDEFINED), thr)
        nodes["n_node_samples"], nodes["weighted_n_node_samples"] = 1, 1.0
        if "missing_go_to_left" in (NODE_DTYPE.names or ()):
            nodes["missing_go_to_left"] = missing[a:b]
        tree = Tree(n_features, np.array([k], dtype=np.intp), 1)
        tree.__setstate__({"max_depth": _tree_depth(lft, rgt), "node_count": n,
                           "nodes": nodes,
                           "values": np.ascontiguousarray(value[a:b].reshape(n, 1, k))})
        trees.append(tree)
    return PixelModel(meta, trees)
