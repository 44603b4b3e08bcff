"""``microtome-client``: lab work from a shell (upload, download, annotations in/out).

Server and key: ``--url``/``--api-key``, else ``MICROTOME_URL``/``MICROTOME_API_KEY``,
else the ``[default]`` section (or ``--profile``) of the config file
(``MICROTOME_CONFIG``, default ``~/.config/microtome-client/config.ini``)::

    [default]
    url = https://microtome.example.org
    api_key = mtk_...
"""

from __future__ import annotations

import argparse
import configparser
import os
import sys
from pathlib import Path
from typing import Any

from .errors import MicrotomeError
from .sync import Client


def config_path() -> Path:
    return Path(os.environ.get("MICROTOME_CONFIG")
                or Path.home() / ".config" / "microtome-client" / "config.ini")


def settings(args: argparse.Namespace) -> tuple[str, str | None]:
    """(url, api key) from flags, then the environment, then the config file."""
    cfg = configparser.ConfigParser()
    cfg.read(config_path())
    section = cfg[args.profile] if cfg.has_section(args.profile) else {}
    url = args.url or os.environ.get("MICROTOME_URL") or section.get("url")
    key = args.api_key or os.environ.get("MICROTOME_API_KEY") or section.get("api_key")
    if not url:
        raise SystemExit("error: no server: pass --url, set MICROTOME_URL or write "
                         f"url = ... in {config_path()}")
    return url, key


def _project(client: Any, ref: str) -> Any:
    return client.project(int(ref) if ref.isdigit() else ref)


def cmd_upload(client: Any, args: argparse.Namespace) -> int:
    project = _project(client, args.project)
    results = project.upload(args.paths, wait=not args.no_wait, progress=not args.quiet,
                             parallel=args.parallel)
    failed = 0
    for r in results:
        if r.ok:
            status = r.image.status if r.image else "?"
            print(f"ok      {r.path}  image {r.image.id} ({status})")
        else:
            failed += 1
            print(f"FAILED  {r.path}: {r.error}")
    print(f"{len(results) - failed} of {len(results)} file(s) uploaded into {project.name}")
    return 1 if failed else 0


def cmd_download(client: Any, args: argparse.Namespace) -> int:
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    images = ([client.image(int(i)) for i in args.images] if args.images
              else list(_project(client, args.project).images()) if args.project else [])
    if not images:
        raise SystemExit("error: name image ids or --project")
    failed = 0
    for image in images:
        try:
            path = image.download_original(out)
            print(f"ok      image {image.id} -> {path}")
        except MicrotomeError as e:
            failed += 1
            print(f"FAILED  image {image.id} ({image.name}): {e}")
    return 1 if failed else 0


def cmd_export(client: Any, args: argparse.Namespace) -> int:
    image = client.image(args.image)
    out = Path(args.output or f"image-{image.id}-annotations.geojson")
    image.export_annotations(out, project=args.project)
    print(f"annotations of image {image.id} written to {out}")
    return 0


def cmd_import(client: Any, args: argparse.Namespace) -> int:
    image = client.image(args.image)
    result = image.import_annotations(Path(args.file), project=args.project,
                                      create_terms=not args.no_create_terms, clip=args.clip)
    created = ", ".join(result.get("terms_created") or []) or "none"
    print(f"imported {result['imported']} annotation(s) into image {image.id} "
          f"(new terms: {created})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="microtome-client", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="server URL (MICROTOME_URL)")
    p.add_argument("--api-key", help="API key (MICROTOME_API_KEY)")
    p.add_argument("--profile", default="default", help="config file section")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("upload", help="upload files or folders into a project")
    up.add_argument("paths", nargs="+")
    up.add_argument("--project", required=True, help="project id or name")
    up.add_argument("--no-wait", action="store_true", help="do not wait for conversion")
    up.add_argument("--parallel", type=int, default=3, help="files sent at once")
    up.add_argument("--quiet", action="store_true", help="no progress bars")
    up.set_defaults(func=cmd_upload)

    down = sub.add_parser("download", help="download original files (when the server kept "
                                           "them)")
    down.add_argument("images", nargs="*", help="image ids")
    down.add_argument("--project", help="every image of this project (id or name)")
    down.add_argument("-o", "--output", default=".", help="folder")
    down.set_defaults(func=cmd_download)

    exp = sub.add_parser("export-annotations", help="annotations of an image as GeoJSON "
                                                    "(QuPath-compatible)")
    exp.add_argument("image", type=int)
    exp.add_argument("-o", "--output")
    exp.add_argument("--project", type=int, help="only this project's annotations")
    exp.set_defaults(func=cmd_export)

    imp = sub.add_parser("import-annotations", help="import a GeoJSON file (all or nothing)")
    imp.add_argument("image", type=int)
    imp.add_argument("file")
    imp.add_argument("--project", type=int, help="project of the new annotations")
    imp.add_argument("--no-create-terms", action="store_true",
                     help="refuse unknown classifications instead of creating terms")
    imp.add_argument("--clip", action="store_true", help="clip shapes to the image")
    imp.set_defaults(func=cmd_import)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    url, key = settings(args)
    try:
        with Client(url, api_key=key, timeout=args.timeout) as client:
            return int(args.func(client, args))
    except (MicrotomeError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
