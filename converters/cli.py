"""`microtome convert` and `microtome info`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from microtome.pyramid.errors import Conflict, InvalidRequest, MicrotomeError
from microtome.pyramid.stores import check_location, is_remote

from .convert import ConvertOptions, ConvertResult, Progress, _stem, convert
from .inputs import Source, gather_sources
from .sources import open_source


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "convert", help="convert slides/images to OME-Zarr",
        description="Convert each SRC (file, DICOM folder, or a folder to walk) to "
                    "OUTDIR/<stem>.ome.zarr.  Exit 0 all converted, 1 some failed, "
                    "2 usage error.")
    p.add_argument("src", nargs="+", type=Path, metavar="SRC")
    p.add_argument("-o", "--outdir", required=True, metavar="OUTDIR",
                   help="output folder, or s3://bucket/prefix (an s3:// URL ending in "
                        ".ome.zarr names the image itself when there is one SRC)")
    p.add_argument("--tile-size", type=_tile_size, default=256, metavar="N",
                   help="chunk (tile) side, a power of two (default 256)")
    p.add_argument("--codec", choices=["auto", "jpeg", "zstd"], default="auto",
                   help="auto: JPEG for RGB slides and lossy pictures, zstd otherwise")
    p.add_argument("--quality", type=_quality, default=90, metavar="Q",
                   help="JPEG quality 1-100 (default 90)")
    p.add_argument("--ngff", choices=["0.5", "0.4"], default="0.5",
                   help="OME-Zarr version: 0.5 (zarr v3, default) or 0.4 (zarr v2)")
    p.add_argument("--format", choices=["ome-zarr", "tiledb"], default="ome-zarr",
                   help="ome-zarr (default): OUTDIR/<stem>.ome.zarr; tiledb: the same "
                        "pixels as TileDB arrays in OUTDIR/<stem>.tdb (needs the tiledb extra)")
    p.add_argument("--workers", type=_positive, default=None, metavar="N",
                   help="threads (default: all cores)")
    p.add_argument("--scheduler", default=None, metavar="ADDR",
                   help="dask.distributed scheduler, e.g. tcp://host:8786 (shared disk)")
    p.add_argument("--scene", type=_scene, default=None, metavar="N|all",
                   help="CZI: the scene to convert (default: the first); 'all': each "
                        "scene to its own <stem>-scene<N>.ome.zarr")
    p.add_argument("--mz", type=_mz_list, default=(), metavar="MZ[,MZ...]",
                   help="imzML: m/z values to store as ion-image channels "
                        "(default: the most intense peaks)")
    p.add_argument("--mz-tol", type=float, default=None, metavar="DA",
                   help="imzML: half-width of each ion image in m/z (default: from the data)")
    p.add_argument("--top-peaks", type=int, default=8, metavar="N",
                   help="imzML: number of peaks made into channels when --mz is not given")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    p.set_defaults(func=run_convert)

    q = subparsers.add_parser("info", help="show what a source contains",
                              description="Detect and describe a source without converting.")
    q.add_argument("src", nargs="+", type=Path, metavar="SRC")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=run_info)


def _tile_size(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError("must be an integer") from None
    if v < 16 or v > 4096 or v & (v - 1):
        raise argparse.ArgumentTypeError("must be a power of two between 16 and 4096")
    return v


def _quality(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError("must be an integer") from None
    if not 1 <= v <= 100:
        raise argparse.ArgumentTypeError("must be between 1 and 100")
    return v


def _positive(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError("must be an integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return v


def _one_line(e: BaseException) -> str:
    msg = e.message if isinstance(e, MicrotomeError) else str(e)
    msg = " ".join(msg.split()) or type(e).__name__
    return msg[:300]


def _quiet_libraries() -> None:
    """tifffile logs an error per malformed tag, again on every open of the
    file; the one error line per failed file already says what matters."""
    logging.getLogger("tifffile").setLevel(logging.CRITICAL)


# -- convert ----------------------------------------------------------------
def _scene(raw: str) -> int | str:
    if raw == "all":
        return raw
    if not raw.isdigit():
        raise argparse.ArgumentTypeError("scene must be a number or 'all'")
    return int(raw)


def _scene_jobs(src: Source, options: ConvertOptions, every: bool
                ) -> list[tuple[Source, ConvertOptions]]:
    """One job per source, or with ``--scene all`` one per scene of a multi-scene file."""
    import dataclasses

    if not every:
        return [(src, options)]
    try:
        with open_source(src.paths if len(src.paths) > 1 else src.paths[0]) as reader:
            scenes = list(getattr(reader, "scene_ids", []) or [])
    except Exception:
        scenes = []  # the conversion itself reports why the file cannot be read
    if len(scenes) <= 1:
        return [(src, options)]
    stem, dot, ext = src.name.rpartition(".")
    return [(Source(src.paths, f"{stem or ext}-scene{n}{dot}{ext if stem else ''}"),
             dataclasses.replace(options, scene=n)) for n in scenes]


def _mz_list(raw: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in raw.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("m/z values must be numbers, comma-separated") from None
    if not values or any(not v > 0 for v in values):
        raise argparse.ArgumentTypeError("m/z values must be positive")
    return values


def run_convert(args: argparse.Namespace) -> int:
    from rich.console import Console

    _quiet_libraries()
    err = Console(stderr=True, highlight=False)
    for s in args.src:
        if not s.exists() and not s.is_symlink():
            err.print(f"[red]error:[/red] {s}: no such file or directory", soft_wrap=True)
            return 2
    try:
        check_location(args.outdir)
    except InvalidRequest as e:
        err.print(f"[red]error:[/red] -o {args.outdir}: {e.message}", soft_wrap=True)
        return 2
    if args.format == "tiledb":
        from .tiledb_out import tiledb_missing

        missing = tiledb_missing()
        if missing:  # before converting anything: minutes of work would be wasted
            from rich.markup import escape

            err.print(f"[red]error:[/red] {escape(missing)}", soft_wrap=True)
            return 2
    if is_remote(args.outdir):
        return _run_remote(args, err)
    args.outdir = Path(args.outdir)
    try:
        args.outdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        err.print(f"[red]error:[/red] cannot create output folder {args.outdir}: {e.strerror}",
                  soft_wrap=True)
        return 2
    if not os.access(args.outdir, os.W_OK):
        err.print(f"[red]error:[/red] output folder {args.outdir} is not writable", soft_wrap=True)
        return 2
    sources, skipped = gather_sources(args.src)
    options = _options(args)
    rows: list[dict[str, Any]] = []
    for path, reason in skipped:
        err.print(f"[red]error:[/red] {path}: {reason}", soft_wrap=True)
        rows.append({"src": str(path), "ok": False, "error": reason})
    used: set[str] = set()
    for src in sources:
        for one, opts in _scene_jobs(src, options, args.scene == "all"):
            rows.append(_convert_one(one, args.outdir, opts, used, err, args.json,
                                     tiledb=args.format == "tiledb"))
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        _summary(rows, err)
    if not rows:
        err.print("[red]error:[/red] no input found", soft_wrap=True)
        return 1
    return 0 if all(r["ok"] for r in rows) else 1


def _options(args: argparse.Namespace) -> ConvertOptions:
    return ConvertOptions(tile_size=args.tile_size, codec=args.codec, quality=args.quality,
                          ngff=args.ngff, workers=args.workers, scheduler=args.scheduler,
                          overwrite=args.overwrite,
                          scene=None if args.scene == "all" else args.scene, mz=args.mz,
                          mz_tol=args.mz_tol, top_peaks=args.top_peaks)


def _run_remote(args: argparse.Namespace, err: Any) -> int:
    """Convert into a local scratch folder, then publish each image to the store
    (root document last: readers never see a half-written image)."""
    import tempfile

    from microtome.core.settings import storage_deadline_from_env
    from microtome.pyramid.stores import StoreUnusable, configure, open_store

    from .publish import image_exists, publish

    configure(storage_deadline_from_env())
    url = str(args.outdir).rstrip("/")
    sources, skipped = gather_sources(args.src)
    tiledb = args.format == "tiledb"
    named = (url.endswith(".tdb" if tiledb else ".ome.zarr") and len(sources) == 1
             and args.scene != "all")
    base = url.rsplit("/", 1)[0] if named else url
    try:
        open_store(base).check()
    except StoreUnusable as e:
        err.print(f"[red]error:[/red] -o {e}", soft_wrap=True)
        return 2
    options = _options(args)
    rows: list[dict[str, Any]] = []
    for path, reason in skipped:
        err.print(f"[red]error:[/red] {path}: {reason}", soft_wrap=True)
        rows.append({"src": str(path), "ok": False, "error": reason})
    used: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="microtome-convert-") as scratch:
        for src in sources:
            for one, opts in _scene_jobs(src, options, args.scene == "all"):
                local = _out_path(one, Path(scratch), used)
                if tiledb:
                    from .tiledb_out import tiledb_path

                    local = tiledb_path(local)
                dest = url if named else f"{url}/{local.name}"
                started = time.monotonic()
                try:
                    if image_exists(open_store(dest)) and not opts.overwrite:
                        raise Conflict("output already exists (use --overwrite)")
                except MicrotomeError as e:
                    rows.append(_failed(one, Path(local.name), e, err, started))
                    continue
                row = _convert_one(one, Path(scratch), replace(opts, overwrite=True), used,
                                   err, args.json, local, tiledb=tiledb)
                if row["ok"]:
                    try:
                        publish(local, dest, overwrite=opts.overwrite)
                    except MicrotomeError as e:
                        row = _failed(one, Path(local.name), e, err, started)
                    else:
                        row["path"] = dest
                rows.append(row)
                shutil.rmtree(local, ignore_errors=True)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        _summary(rows, err)
    if not rows:
        err.print("[red]error:[/red] no input found", soft_wrap=True)
        return 1
    return 0 if all(r["ok"] for r in rows) else 1


def _out_path(src: Source, outdir: Path, used: set[str]) -> Path:
    stem = _stem(src.name)
    name, i = stem, 2
    while name in used:
        name = f"{stem}-{i}"
        i += 1
    used.add(name)
    return outdir / f"{name}.ome.zarr"


def _convert_one(src: Source, outdir: Path, options: ConvertOptions, used: set[str],
                 err: Any, quiet: bool, dst: Path | None = None,
                 tiledb: bool = False) -> dict[str, Any]:
    """Convert one source to ``dst`` (default OUTDIR/<stem>.ome.zarr); with ``tiledb``
    to OUTDIR/<stem>.tdb through an OME-Zarr scratch conversion beside it."""
    if tiledb:
        return _convert_tiledb(src, outdir, options, used, err, quiet, dst)
    from rich.progress import (
        BarColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as Bar

    dst = dst or _out_path(src, outdir, used)
    label = src.display
    bar = Bar(TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
              TextColumn("{task.fields[stage]}"), TextColumn("{task.fields[rate]}"),
              TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
              console=err, disable=quiet or not err.is_terminal, transient=False)
    task = bar.add_task(src.name[-40:], total=1.0, stage="", rate="")

    def on_progress(p: Progress) -> None:
        mb = p.bytes_written / 1e6
        rate = f"{mb:.0f} MB {mb / p.seconds:.0f} MB/s" if p.seconds > 0 else ""
        bar.update(task, completed=p.fraction, stage=p.stage, rate=rate)

    started = time.monotonic()
    try:
        with bar:
            try:
                res = convert(src.paths if len(src.paths) > 1 else src.paths[0], dst, options,
                              on_progress)
            except BaseException:
                bar.update(task, stage="[red]failed[/red]")
                raise
    except KeyboardInterrupt:
        raise
    except (MicrotomeError, ValueError, OSError) as e:
        return _failed(src, dst, e, err, started)
    except Exception as e:  # never a traceback for one bad file
        return _failed(src, dst, e, err, started)
    if not quiet and not err.is_terminal:
        err.print(f"converted {label} -> {dst} ({res.seconds:.1f} s)")
    return {"src": label, "ok": True, **_result_row(res)}


def _convert_tiledb(src: Source, outdir: Path, options: ConvertOptions, used: set[str],
                    err: Any, quiet: bool, dst: Path | None) -> dict[str, Any]:
    import tempfile

    from .tiledb_out import tiledb_path, transcode

    zarr = dst.with_name(dst.name.removesuffix(".tdb") + ".ome.zarr") if dst \
        else _out_path(src, outdir, used)
    final = dst or tiledb_path(zarr)
    started = time.monotonic()
    if final.exists() and not options.overwrite:
        return _failed(src, final, Conflict("output already exists (use --overwrite)"), err,
                       started)
    with tempfile.TemporaryDirectory(prefix=".tiledb-scratch-", dir=final.parent) as scratch:
        row = _convert_one(src, Path(scratch), replace(options, overwrite=True), used, err,
                           True, Path(scratch) / zarr.name)
        if not row["ok"]:
            row["path"] = str(final)
            return row
        try:
            row["bytes_written"] = transcode(Path(scratch) / zarr.name, final,
                                             options.overwrite)
        except (MicrotomeError, OSError, ImportError) as e:
            return _failed(src, final, e, err, started)
    row["path"] = str(final)
    row["seconds"] = round(time.monotonic() - started, 3)
    row["format_stored"] = "tiledb"
    if not quiet and not err.is_terminal:
        err.print(f"converted {src.display} -> {final} ({row['seconds']:.1f} s)")
    return row


def _failed(src: Source, dst: Path, e: BaseException, err: Any,
            started: float) -> dict[str, Any]:
    msg = _one_line(e)
    err.print(f"[red]error:[/red] {src.display}: {msg}", soft_wrap=True)
    return {"src": src.display, "ok": False, "error": msg, "path": str(dst),
            "seconds": round(time.monotonic() - started, 3)}


def _result_row(res: ConvertResult) -> dict[str, Any]:
    d = res.as_dict()
    d["seconds"] = round(d["seconds"], 3)
    return d


def _summary(rows: list[dict[str, Any]], err: Any) -> None:
    from rich.table import Table

    table = Table(title="conversion summary")
    for col in ("source", "status", "format", "size", "levels", "MB", "s", "output / error"):
        table.add_column(col, overflow="fold")
    for r in rows:
        if r["ok"]:
            table.add_row(r["src"], "[green]ok", r["format"], f'{r["width"]}x{r["height"]}',
                          str(r["levels"]), f'{r["bytes_written"] / 1e6:.1f}',
                          f'{r["seconds"]:.1f}', r["path"])
        else:
            table.add_row(r["src"], "[red]failed", "", "", "", "", "", r["error"])
    err.print(table)


# -- info -------------------------------------------------------------------
def run_info(args: argparse.Namespace) -> int:
    from rich.console import Console

    _quiet_libraries()
    out = Console(highlight=False)
    err = Console(stderr=True, highlight=False)
    sources, skipped = gather_sources(args.src)
    docs: list[dict[str, Any]] = []
    status = 0
    for path, reason in skipped:
        err.print(f"[red]error:[/red] {path}: {reason}", soft_wrap=True)
        docs.append({"src": str(path), "ok": False, "error": reason})
        status = 1
    for src in sources:
        try:
            with open_source(src.paths if len(src.paths) > 1 else src.paths[0]) as reader:
                doc = {"src": src.display, "ok": True, **reader.info.as_dict()}
        except Exception as e:
            msg = _one_line(e)
            err.print(f"[red]error:[/red] {src.display}: {msg}", soft_wrap=True)
            docs.append({"src": src.display, "ok": False, "error": msg})
            status = 1
            continue
        docs.append(doc)
        if not args.json:
            _print_info(out, doc)
    if args.json:
        print(json.dumps(docs if len(docs) != 1 else docs[0], indent=1))
    if not docs:
        err.print("[red]error:[/red] no input found", soft_wrap=True)
        return 1
    return status


def _channel_text(c: dict[str, Any]) -> str:
    extra = [f"#{c['color']}" if c.get("color") else "",
             f"ex {c['excitation_nm']:g} nm" if c.get("excitation_nm") else "",
             f"em {c['emission_nm']:g} nm" if c.get("emission_nm") else ""]
    extra = [e for e in extra if e]
    return c["name"] + (f" ({', '.join(extra)})" if extra else "")


def _print_info(out: Any, d: dict[str, Any]) -> None:
    from rich.table import Table

    t = Table(show_header=False)
    t.add_column("key", style="bold")
    t.add_column("value", overflow="fold")
    px = d["pixel_size_um"]
    rows = [
        ("file", str(d["src"])),
        ("format", f'{d["format"]}' + (f' ({d["vendor"]})' if d["vendor"] else "")),
        ("size", f'{d["width"]} x {d["height"]} px'),
        ("samples", f'{d["dtype"]}' + (", RGB" if d["rgb"] else "")),
        ("t / c / z", f'{d["size_t"]} / {d["size_c"]} / {d["size_z"]}'),
        ("levels", ", ".join(f"{w}x{h}" for w, h in d["levels"]) or "1"),
        ("pixel size", f"{px[0]:.4g} x {px[1]:.4g} µm" if px else "unknown"),
        ("z spacing", f'{d["z_spacing_um"]:.4g} µm' if d["z_spacing_um"] else "-"),
        ("objective", f'{d["objective_power"]:g}x' if d["objective_power"] else "-"),
        ("channels", ", ".join(_channel_text(c) for c in d["channels"]) or "-"),
        ("acquired", d.get("acquired") or "-"),
        ("scanner", d.get("scanner") or "-"),
        ("associated", ", ".join(d["associated"]) or "-"),
        ("tile size", str(d["tile_size"] or "untiled")),
    ]
    if d["notes"]:
        rows.append(("notes", "; ".join(d["notes"])))
    for k, v in rows:
        t.add_row(k, v)
    out.print(t)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="converters")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
