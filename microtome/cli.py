"""`microtome` command line: each package registers its own subcommands.

Subcommand modules expose ``register(subparsers)`` and set ``func`` on their
parser; ``func(args) -> int`` returns the exit status (0 ok, 1 some work
failed, 2 usage error).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

# Order is the order shown in --help.
SUBCOMMAND_MODULES = (
    "microtome.converters.cli",     # convert, info
    "microtome.converters.export",  # export
    "microtome.tileserver.cli",     # tiles
    "microtome.serve",    # serve
    "microtome.admin",    # user, import
    "microtome.reindex",  # reindex
    "microtome.analyse",  # analyse
    "microtome.analysis.worker",    # worker
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="microtome",
        description="Whole-slide image conversion, tile serving and management.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def quiet_third_party_warnings() -> None:
    """Warnings that say nothing to a user (pgserver's platformdirs lookup on
    machines without a login session)."""
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


def main(argv: list[str] | None = None) -> int:
    quiet_third_party_warnings()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
