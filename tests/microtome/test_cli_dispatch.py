"""`microtome COMMAND`: convert/info/export import only their own module (the other
commands' imports — jsonschema, the analysis registry — cost ~0.5 s of CPU per run);
every other command and the top-level help still see every command."""

from __future__ import annotations

import subprocess
import sys

from microtome.cli import build_parser


def _commands(command: str | None) -> set[str]:
    parser = build_parser(command)
    sub = next(a for a in parser._actions if a.dest == "command")
    return set(sub.choices)  # type: ignore[arg-type]


def test_fast_commands_register_their_module_only() -> None:
    everything = _commands(None)
    assert {"convert", "info", "export", "tiles", "serve", "analyse", "worker"} <= everything
    assert _commands("convert") == {"convert", "info"}
    assert _commands("export") == {"export"}
    assert _commands("serve") == everything
    assert _commands("--help") == everything


def test_convert_help_does_not_import_the_analysis_package() -> None:
    code = ("import sys; from microtome.cli import main\n"
            "try: main(['convert', '--help'])\n"
            "except SystemExit: pass\n"
            "print('microtome.analysis' in sys.modules, 'jsonschema' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "False False"
