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


#: Commands whose module alone is imported when they are named (the rest cost
#: ~0.5 s of CPU in imports — jsonschema, the analysis registry — which a
#: conversion benchmarked against libvips, or a batch of them, should not pay).
FAST_COMMANDS = {"convert": "microtome.converters.cli", "info": "microtome.converters.cli",
                 "export": "microtome.converters.export"}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="microtome",
        description="Whole-slide image conversion, tile serving and management.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    only = FAST_COMMANDS.get(command or "")
    for name in SUBCOMMAND_MODULES if only is None else (only,):
        importlib.import_module(name).register(sub)
    return parser


def quiet_third_party_warnings() -> None:
    """Warnings that say nothing to a user (pgserver's platformdirs lookup on
    machines without a login session)."""
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


def main(argv: list[str] | None = None) -> int:
    quiet_third_party_warnings()
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv[0] if argv else None)
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
