"""A full disk, in the browser: the upload says "not enough space on the server";
a conversion that ran out of space says so and its Retry button converts again
once space is freed.  Real small filesystems (tmpfs) under the server's var/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.catalog.smallfs import small_disk
from tests.frontend.browser import (
    ADMIN,
    ConsoleLog,
    LiveServer,
    api_call,
    api_setup_admin,
    ui_login,
)

MB = 1024 * 1024


@pytest.fixture(autouse=True)
def _no_reserve(monkeypatch: pytest.MonkeyPatch) -> None:
    """The filesystems here are tiny: no reserve (autouse: set before the server starts)."""
    monkeypatch.setenv("MICROTOME_DISK_RESERVE_MB", "0")


def test_full_disk_messages_and_retry(live_server: LiveServer, context: Any, page: Any,
                                      testdata: Path, console: ConsoleLog) -> None:
    csrf = api_setup_admin(context)
    project = api_call(context, "POST", "/api/projects", csrf, {"name": "Full"})
    ui_login(page, *ADMIN, next_path=f"/projects/{project['id']}")
    expect(page.locator("#upload-section")).to_be_visible()
    console.expected.append("507")
    src = testdata / "CMU-1-Small-Region.svs"
    with small_disk(live_server.var_dir / "uploads", 64 * 1024) as uploads, \
            small_disk(live_server.var_dir / "images", 256 * 1024) as images:
        assert uploads.real and images.real, "needs root to mount small filesystems"
        # 1. The upload does not fit: the row says why, and offers Retry.
        page.set_input_files("#file-input", str(src))
        row = page.locator(f"#uploads li[data-file='{src.name}']")
        expect(row).to_have_attribute("data-state", "failed")
        expect(row).to_contain_text("not enough space on the server")

        # 2. Room for the upload, not for the conversion: it fails saying so.
        uploads.grow(64 * MB)
        row.get_by_role("button", name=f"Retry upload of {src.name}").click()
        expect(row).to_have_attribute("data-state", "conversion-failed", timeout=120_000)
        expect(row).to_contain_text("not enough disk space")
        card = page.locator(".tile-card", has_text=src.name)
        expect(card.locator(".badge")).to_have_text("failed")
        expect(card).to_contain_text("not enough disk space")

        # 3. Space freed: the card's Retry converts from the kept original.
        images.grow(256 * MB)
        card.get_by_role("button", name=f"Retry conversion of {src.name}").click()
        expect(card.locator(".badge")).to_have_text("ready", timeout=120_000)
        expect(card.get_by_role("button", name=f"Retry conversion of {src.name}")) \
            .to_have_count(0)
