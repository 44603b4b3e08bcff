"""Issue 16, "Done when": the example third-party app, installed with pip, appears
in the UI — a server whose Python finds the pip-installed package lists it in the
viewer's Analyse panel, with the form built from its schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.frontend.browser import ADMIN, LiveServer, admin_project_slide, ui_login, wait_tiles

EXAMPLE = Path(__file__).resolve().parents[2] / "apps" / "example"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    # A real pip install, into a folder of its own (the test environment stays as it is).
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--target", str(target), str(EXAMPLE)],
                   check=True, capture_output=True, timeout=240)
    return target


@pytest.fixture
def server_env(site: Path) -> dict[str, str]:
    return {"MICROTOME_LOCAL_WORKERS": "0", "PYTHONPATH": str(site)}


def test_pip_installed_example_app_is_offered_in_the_viewer(
        live_server: LiveServer, context: Any, page: Any, converted_slide: Path) -> None:
    _, project, iid = admin_project_slide(context, live_server, converted_slide,
                                          project="Apps", image="CMU-1-Small-Region")
    ui_login(page, *ADMIN, next_path=f"/viewer/{iid}?project={project['id']}")
    wait_tiles(page)
    expect(page.locator("#analyse-app option[value='stain_grid']")).to_have_count(1)
    page.select_option("#analyse-app", "stain_grid")
    expect(page.locator("#analyse-description")).not_to_be_empty()
    expect(page.locator("#analyse-form .param").first).to_be_visible()
