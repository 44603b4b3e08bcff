"""Properties, description, attachments, activity and follow mode through the client,
against a live server (scanner properties come from a real conversion)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from microtome_client import AsyncClient, Unprocessable

from tests.client.conftest import LiveServer, unique


def test_properties_about_csv_attachments(client: Any, ready_images: dict[str, int],
                                          tmp_path: Path) -> None:
    project = client.create_project(unique("props"))
    image = client.image(project.add_image(ready_images["CMU-1-Small-Region.svs"]).id)
    # The conversion recorded the scanner metadata the converter normalised.
    props = image.get_properties()
    assert props.get("vendor") == "aperio" or "scanner" in props, props
    assert image.set_properties(stain="HE", block="A1")["stain"] == "HE"
    assert client.image(image.id).properties["block"] == "A1"
    assert image.set_properties({"block": None}).get("block") is None
    about = image.update_about(description="*x* <script>alert(1)</script>", tags=["t1"])
    assert "<script" not in about["description_html"] and about["tags"] == ["t1"]
    assert project.set_properties(study="S")["study"] == "S"
    about = project.update_about(description="# Plan\n<script>x</script>")
    assert "<h1>Plan</h1>" in about["description_html"] and "<script" not in \
        about["description_html"] and project.about() == about
    assert project.set_layer_colors({"user:1": "#AA0000", "analysis:2": "#00bb00"}) == {
        "user:1": "#aa0000", "analysis:2": "#00bb00"}
    assert project.set_layer_colors({"analysis:2": None}) == project.layer_colors() == {
        "user:1": "#aa0000"}
    assert project.property_keys()["stain"] == 1
    name = image.source_filename
    report = project.import_properties(f"file,grade\n{name},2\n".encode(), dry_run=True)
    assert report["applied"] is False and report["rows"][0]["status"] == "ok"
    with pytest.raises(Unprocessable) as exc:
        project.import_properties(b"file,grade\nnope.svs,2\n")
    assert exc.value.detail["rows"][0]["status"] == "error"
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"%PDF-1.4\n%%EOF\n")
    att = image.attach(pdf)
    assert att["content_type"] == "application/pdf"
    assert [a["id"] for a in image.attachments()] == [att["id"]]
    out = client.download_attachment(att["id"], tmp_path / "copy.pdf")
    assert out.read_bytes() == pdf.read_bytes()
    client.delete_attachment(att["id"])
    assert image.attachments() == []
    assert {"users", "most_viewed", "annotations_per_day"} <= set(project.dashboard())


async def test_live_and_follow(live_server: LiveServer, ready_images: dict[str, int]) -> None:
    async with AsyncClient(live_server.url, api_key=live_server.api_key) as admin:
        project = await admin.create_project(unique("follow"))
        image = await admin.image(ready_images["CMU-1-Small-Region.svs"])
        await project.add_image(image)
        name = unique("student")
        student = await admin.create_user(name, "student password 1")
        await project.add_member(name, "viewer")
        me = await admin.me()
    async with AsyncClient(live_server.url, username=name, password="student password 1") as s:
        async with image.live() as ws:
            await ws.send_json({"x": 1, "y": 2, "w": 30, "h": 40})
            users = await s.live_users()
            assert any(u["user_id"] == me.id for u in users)
            seen: list[dict[str, Any]] = []

            async def listen() -> None:
                async for msg in s.follow(me.id):
                    seen.append(msg)
                    if msg.get("x") == 5:
                        return

            task = asyncio.create_task(listen())
            await asyncio.sleep(0.5)
            await ws.send_json({"x": 5, "y": 6, "w": 30, "h": 40})
            await asyncio.wait_for(task, 10)
        assert seen[-1]["image_id"] == image.id and seen[-1]["w"] == 30
        assert student.username == name
    async with AsyncClient(live_server.url, api_key=live_server.api_key) as admin:
        img = await admin.image(image.id)
        for _ in range(30):  # the batch writer flushes once a second
            sessions = await img.activity_sessions()
            if sessions and sessions[0]["seconds"] is not None:
                break
            await asyncio.sleep(0.3)
        assert sessions and sessions[0]["views"] >= 1
