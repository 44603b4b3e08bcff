"""Uploads that explain themselves (issue 14, item 6), in Debian chromium: files the
browser can judge are refused before a byte is sent, with the reason; a file already
in the project (same SHA-256, hashed in the browser, or same name) asks first, and the
second copy says which image it duplicates; a failed conversion keeps its reason (plain
words, the server's text behind a toggle) after a reload, with Retry and Delete."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from playwright.sync_api import expect

from tests.frontend.browser import (
    ADMIN,
    ConsoleLog,
    LiveServer,
    api_call,
    api_setup_admin,
    screenshot,
    ui_login,
)


def _png(seed: int = 7) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_uploads_explain_themselves(live_server: LiveServer, context: Any, page: Any,
                                    console: ConsoleLog, tmp_path: Path) -> None:
    csrf = api_setup_admin(context)
    project = api_call(context, "POST", "/api/projects", csrf, {"name": "Uploads"})
    ui_login(page, *ADMIN, next_path=f"/projects/{project['id']}")
    expect(page.locator("#upload-section")).to_be_visible()
    uploads: list[str] = []
    page.on("request", lambda r: uploads.append(r.url) if r.method == "POST"
            and r.url.endswith("/api/uploads") else None)

    # Refused in the browser, each with its reason; nothing is sent.
    page.set_input_files("#file-input", [
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"patient notes\n" * 40},
        {"name": "report.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.7\n" + b"x" * 500},
        {"name": "empty.svs", "mimeType": "application/octet-stream", "buffer": b""}])
    reasons = {"notes.txt": "text file, not an image", "report.pdf": "PDF document",
               "empty.svs": "empty (0 bytes)"}
    for name, reason in reasons.items():
        row = page.locator(f"#uploads li[data-file='{name}']")
        expect(row).to_have_attribute("data-state", "refused")
        expect(row).to_contain_text("not uploaded: ")
        expect(row).to_contain_text(reason)
    assert uploads == []

    # A real picture, then the same file again: asked first, then marked as a copy.
    png = _png()
    page.set_input_files("#file-input", [{"name": "field.png", "mimeType": "image/png",
                                          "buffer": png}])
    row = page.locator("#uploads li[data-file='field.png']")
    expect(row).to_have_attribute("data-state", "ready", timeout=120_000)
    asked: list[str] = []

    def answer(d: Any) -> None:
        asked.append(d.message)
        d.accept()

    page.once("dialog", answer)
    page.set_input_files("#file-input", [{"name": "field.png", "mimeType": "image/png",
                                          "buffer": png}])
    expect(page.locator("#uploads li[data-file='field.png'][data-state='ready']")
           ).to_have_count(2, timeout=120_000)
    assert asked and "already in this project" in asked[0] and "second copy" in asked[0]
    assert "identical file (same content)" in asked[0], asked[0]
    page.reload()
    copy = page.locator(".tile-card", has_text="Same file as")
    expect(copy).to_have_count(1)
    expect(copy.locator(".duplicate a")).to_have_text("field.png")
    images = context.request.get(f"/api/projects/{project['id']}/images?sort=id").json()
    first, second = images["items"]
    assert first["duplicate_of"] is None
    assert second["duplicate_of"] == {"id": first["id"], "name": "field.png"}
    assert copy.locator(".duplicate a").get_attribute("href").startswith(f"/viewer/{first['id']}")

    # Declining the question uploads nothing.
    page.once("dialog", lambda d: d.dismiss())
    page.set_input_files("#file-input", [{"name": "field.png", "mimeType": "image/png",
                                          "buffer": png}])
    expect(page.locator("#uploads li[data-state='refused']", has_text="field.png")
           ).to_contain_text("already in this project")

    # The same content under another name is recognised by its SHA-256, computed in the
    # browser before sending; a new name with other content is only asked about by name.
    sent = len(uploads)
    asked.clear()

    def decline(d: Any) -> None:
        asked.append(d.message)
        d.dismiss()

    page.once("dialog", decline)
    page.set_input_files("#file-input", [{"name": "renamed.png", "mimeType": "image/png",
                                          "buffer": png}])
    expect(page.locator("#uploads li[data-file='renamed.png']")).to_have_attribute(
        "data-state", "refused")
    expect(page.locator("#uploads li[data-file='renamed.png']")).to_contain_text(
        'identical to "field.png"')
    assert asked and 'identical file (same content)' in asked[0] and '"field.png"' in asked[0]
    assert len(uploads) == sent
    digest = hashlib.sha256(png).hexdigest()
    found = context.request.get(f"/api/projects/{project['id']}/images?checksum={digest}").json()
    assert found["total"] == 2
    bad = context.request.get(f"/api/projects/{project['id']}/images?checksum=abc")
    assert bad.status == 400 and "SHA-256" in bad.json()["error"]
    asked.clear()
    page.once("dialog", decline)
    page.set_input_files("#file-input", [{"name": "field.png", "mimeType": "image/png",
                                          "buffer": _png(seed=8)}])
    expect(page.locator("#uploads li[data-file='field.png'][data-state='refused']")
           ).to_have_count(2)
    assert asked and "already in this project" in asked[0] and "identical" not in asked[0]

    # Bytes the browser cannot judge fail on the server; the reason survives a reload.
    page.set_input_files("#file-input", [{"name": "scan.bin",
                                          "mimeType": "application/octet-stream",
                                          "buffer": bytes(range(256)) * 64}])
    expect(page.locator("#uploads li[data-file='scan.bin']")).to_have_attribute(
        "data-state", "conversion-failed", timeout=60_000)
    page.reload()
    card = page.locator(".tile-card", has_text="scan.bin")
    details = card.locator("details.failure")
    expect(details.locator("summary")).to_contain_text("Microtome cannot read this file")
    expect(details.locator("code")).not_to_be_visible()
    details.locator("summary").click()
    expect(details.locator("code")).to_contain_text("not a recognised image format")
    expect(card.get_by_role("button", name="Retry conversion of scan.bin")).to_be_visible()
    expect(card.get_by_role("button", name="Delete scan.bin")).to_be_visible()
    screenshot(page, "upload-explained")
    card.get_by_role("button", name="Delete scan.bin").click()
    page.locator("#delete-confirm").click()
    expect(page.locator(".tile-card", has_text="scan.bin")).to_have_count(0)
    assert not console.unexpected(), console.errors
