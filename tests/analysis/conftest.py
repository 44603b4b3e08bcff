from __future__ import annotations

from pathlib import Path

import pytest

TESTDATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata"
CMU = TESTDATA / "CMU-1-Small-Region.svs"


@pytest.fixture(scope="session")
def cmu_svs() -> Path:
    if not CMU.exists():
        pytest.fail(f"test data missing: {CMU}")
    return CMU


@pytest.fixture(scope="session")
def cmu_zarr(cmu_svs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from microtome.converters import ConvertOptions, convert

    out = tmp_path_factory.mktemp("analysis") / "cmu.ome.zarr"
    return convert(cmu_svs, out, ConvertOptions(workers=2)).path


# The real application on a populated catalog (users with roles, a ready image).
from tests.annotations.conftest import api, world  # noqa: E402, F401
from tests.catalog.conftest import small_pyramid  # noqa: E402, F401
