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
def cmu_zarr(cmu_pyramid: Path) -> Path:
    """The sample as OME-Zarr: the session's shared conversion (tests/conftest.py), read only."""
    return cmu_pyramid


# The real application on a populated catalog (users with roles, a ready image).
from tests.annotations.conftest import api, world  # noqa: E402, F401
from tests.catalog.conftest import small_pyramid  # noqa: E402, F401
