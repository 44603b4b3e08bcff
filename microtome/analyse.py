"""`microtome analyse APP SRC`: run an analysis app locally, results as GeoJSON.

SRC is an OME-Zarr directory, read in place, or any file ``microtome
convert`` accepts, converted first into a temporary folder (removed after).
No server is involved; the same app code runs on workers through the client.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from microtome.analysis import (
    AnalysisError,
    InvalidParams,
    Region,
    available_apps,
    coerce_cli_params,
    get_app,
    run_app,
    validate_params,
    write_geojson,
)
from microtome.analysis.raster import PyramidRaster
from microtome.analysis.registry import broken_apps
from microtome.pyramid.errors import MicrotomeError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "analyse", aliases=["analyze"], help="run an analysis app on an image (local)",
        description="Run the analysis app APP on SRC (an OME-Zarr or any convertible file) "
                    "and write its objects as QuPath-compatible GeoJSON.  `microtome "
                    "analyse --list` shows the installed apps and their parameters.  "
                    "Exit 0 done, 1 the analysis failed, 2 usage error.")
    p.add_argument("app", nargs="?", metavar="APP")
    p.add_argument("src", nargs="?", type=Path, metavar="SRC",
                   help="an OME-Zarr or a convertible file; with --server an image id")
    p.add_argument("-o", "--output", type=Path, metavar="OUT.geojson",
                   help="where to write the results (default: <SRC stem>.<APP>.geojson)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="an app parameter (repeatable); see --list for each app's")
    p.add_argument("--version", dest="app_version", default=None,
                   help="require this version of the app")
    p.add_argument("--region", type=_region, default=None, metavar="X,Y,W,H",
                   help="analyse only this rectangle (full-resolution pixels)")
    p.add_argument("--training", type=Path, default=None, metavar="GEOJSON",
                   help="annotations to learn from, for apps that learn (pixel_classifier): "
                        "a GeoJSON FeatureCollection whose features carry a "
                        "classification (QuPath) or microtome terms")
    p.add_argument("--save-model", type=Path, default=None, metavar="PATH",
                   help="write the model the app trains (pixel_classifier) to PATH; apply "
                        "it to another image with --param model=PATH")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="N",
                   help="threads for apps that work tile by tile (default: all cores)")
    p.add_argument("--server", default=None, metavar="URL",
                   help="submit to this server instead (SRC is then an image id); "
                        "needs --api-key")
    p.add_argument("--api-key", default=None, metavar="KEY", help="with --server")
    p.add_argument("--wait", action="store_true",
                   help="with --server: wait until the analysis has finished")
    p.add_argument("--list", action="store_true", help="list the installed apps and exit")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=run_analyse)


def _region(text: str) -> Region:
    try:
        return Region.parse(text)
    except AnalysisError as e:
        raise argparse.ArgumentTypeError(e.message) from None


def _list_apps() -> int:
    import json

    for name, app in sorted(available_apps().items()):
        d = app.descriptor
        print(f"{name} {d.version} - {d.title}\n  {d.description}")
        for k, prop in d.params_schema.get("properties", {}).items():
            extra = {x: prop[x] for x in ("enum", "minimum", "maximum", "default") if x in prop}
            print(f"    {k} ({prop.get('type', 'any')}) {json.dumps(extra, ensure_ascii=False)}")
    for name, err in sorted(broken_apps().items()):
        print(f"{name}: cannot be loaded: {err}", file=sys.stderr)
    return 0


@contextlib.contextmanager
def _open_raster(src: Path, quiet: bool) -> Iterator[PyramidRaster]:
    if src.is_dir() and ((src / "zarr.json").exists() or (src / ".zattrs").exists()):
        yield PyramidRaster(src)
        return
    from microtome.converters import ConvertOptions, convert

    with tempfile.TemporaryDirectory(prefix="microtome-analyse-") as tmp:
        if not quiet:
            print(f"converting {src.name} ...", file=sys.stderr)
        out = convert(src, Path(tmp) / "image.ome.zarr", ConvertOptions(workers=None))
        yield PyramidRaster(out.path)


def _training(path: Path | None) -> Any:
    from microtome.analysis.training import from_geojson

    return (lambda: from_geojson(path)) if path is not None else (lambda: [])


def _read_model(ref: Any) -> bytes:
    """``--param model=PATH`` locally: a model file (saved with --save-model or
    downloaded from a server with the client's ``Analysis.download_model``)."""
    if not isinstance(ref, str):
        raise AnalysisError(f"model {ref!r}: without --server, give a model file's path "
                            "(download a server's model with the Python client: "
                            "Analysis.download_model)")
    try:
        return Path(ref).read_bytes()
    except OSError as e:
        raise AnalysisError(f"model {ref}: {e.strerror or e}") from None


def _progress(quiet: bool) -> Any:
    last = [-1]

    def report(f: float) -> None:
        pct = int(f * 100)
        if not quiet and pct // 10 != last[0] // 10:
            print(f"  {pct}%", file=sys.stderr)
            last[0] = pct
    return report


def run_analyse(args: argparse.Namespace) -> int:
    if args.list:
        return _list_apps()
    if not args.app or not args.src:
        print("error: APP and SRC are required (or --list)", file=sys.stderr)
        return 2
    if args.server:
        return _submit(args)
    try:
        app = get_app(args.app, args.app_version)
        params = validate_params(app.descriptor,
                                 coerce_cli_params(app.descriptor, args.param))
    except InvalidParams as e:
        for k, v in sorted(e.errors.items()):
            print(f"error: parameter {k}: {v}", file=sys.stderr)
        return 2
    except AnalysisError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 2
    if not args.src.exists():
        print(f"error: {args.src}: no such file or directory", file=sys.stderr)
        return 2
    out = args.output or Path(f"{args.src.name.split('.')[0]}.{args.app}.geojson")
    if not out.parent.is_dir():
        print(f"error: {out.parent}: no such directory", file=sys.stderr)
        return 2
    models: list[bytes] = []
    try:
        with _open_raster(args.src, args.quiet) as raster:
            features, prov = run_app(app, raster, params, args.region,
                                     workers=max(1, args.workers),
                                     annotations=_training(args.training),
                                     load_model=_read_model, on_model=models.append,
                                     source={"file": args.src.name},
                                     on_progress=_progress(args.quiet),
                                     on_log=(lambda s: None) if args.quiet else
                                     (lambda s: print(f"  {s}", file=sys.stderr)))
        prov["source"] = args.src.name
        n = write_geojson(out, features, prov)
        if args.save_model is not None:
            if not models:
                print(f"error: {args.app} trained no model here (--save-model)",
                      file=sys.stderr)
                return 1
            tmp = args.save_model.with_name(f".{args.save_model.name}.partial")
            tmp.write_bytes(models[-1])
            os.replace(tmp, args.save_model)
            print(f"model -> {args.save_model}")
    except (AnalysisError, MicrotomeError) as e:
        print(f"error: {args.src}: {e.message}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{n} objects -> {out}")
    return 0


def _submit(args: argparse.Namespace) -> int:
    """Queue the analysis on a server (its workers run it); exit 1 if it fails."""
    from microtome_client import APIError, Client, ConnectionFailed

    from microtome.analysis import AppDescriptor

    if not args.api_key:
        print("error: --server needs --api-key", file=sys.stderr)
        return 2
    try:
        image_id = int(str(args.src))
    except ValueError:
        print(f"error: with --server, SRC is an image id (got {args.src})", file=sys.stderr)
        return 2
    try:
        with Client(args.server, api_key=args.api_key) as client:
            apps = {a.name: a for a in client.apps()}
            if args.app not in apps:
                print(f"error: the server has no app {args.app!r} "
                      f"(it has: {', '.join(sorted(apps)) or 'none'})", file=sys.stderr)
                return 2
            remote = apps[args.app]
            d = AppDescriptor(remote.name, remote.version, remote.title, remote.description,
                              remote.params_schema)
            region = args.region and (args.region.x, args.region.y, args.region.w,
                                      args.region.h)
            a = client.image(image_id).analyse(args.app, coerce_cli_params(d, args.param),
                                               version=args.app_version, region=region)
            print(f"analysis {a.id} queued")
            if args.wait:
                a = a.wait()
                print(f"analysis {a.id}: {a.status}"
                      + (f", {a.result_count} objects" if a.status == "done" else "")
                      + (f" ({a.error})" if a.error else ""))
                return 0 if a.status == "done" else 1
            return 0
    except InvalidParams as e:
        for k, v in sorted(e.errors.items()):
            print(f"error: parameter {k}: {v}", file=sys.stderr)
        return 2
    except APIError as e:
        fields = (e.detail or {}).get("fields") if isinstance(e.detail, dict) else None
        for k, v in sorted((fields or {}).items()):
            print(f"error: parameter {k}: {v}", file=sys.stderr)
        print(f"error: {e}", file=sys.stderr)
        return 2 if e.status == 400 else 1
    except ConnectionFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
