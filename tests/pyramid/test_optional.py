"""Optional extras: with a heavy dependency absent, the feature that needs it fails with a
message naming the extra to install (checked in a child interpreter where the module is
made unimportable), and everything else still imports."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

CASES = {
    "czi": ("pylibCZIrw", """
        from pathlib import Path
        from microtome.converters.formats.czi_reader import CziReader
        from microtome.pyramid.errors import SourceError
        try:
            CziReader(Path("any.czi"))
        except SourceError as e:
            print(e)
        """),
    "vips": ("pyvips", """
        from pathlib import Path
        from microtome.converters.formats.vips_picture import VipsPicture
        from microtome.pyramid.errors import SourceError
        try:
            VipsPicture(Path("big.jpg"), "jpeg")
        except SourceError as e:
            print(e)
        """),
    "s3": ("obstore", """
        from microtome.pyramid.optional import MissingExtra
        from microtome.pyramid.stores import open_store
        try:
            open_store("s3://bucket/images")
        except MissingExtra as e:
            print(e)
        """),
    "cluster": ("distributed", """
        import asyncio
        from microtome.catalog.dask_jobs import check_scheduler
        try:
            asyncio.run(check_scheduler("tcp://127.0.0.1:1", 1))
        except RuntimeError as e:
            print(e)
        """),
}


@pytest.mark.parametrize("extra", sorted(CASES))
def test_a_missing_extra_is_named(extra: str) -> None:
    module, body = CASES[extra]
    code = (f"import sys\nsys.modules[{module!r}] = None  # makes the import fail\n"
            "import microtome.app  # the whole server still imports\n"
            + textwrap.dedent(body))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"pip install 'microtome[{extra}]'" in r.stdout, r.stdout
