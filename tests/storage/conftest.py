"""Fixtures: the session's moto S3 server (``s3``, tests/conftest.py), its AWS
variables in the environment."""

from __future__ import annotations

import os

import pytest

from . import s3server


@pytest.fixture
def s3_env(s3: s3server.S3Server, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The session server's AWS variables, set for this test (and its subprocesses)."""
    for k, v in s3.env.items():
        monkeypatch.setenv(k, v)
    return {**os.environ, **s3.env}
