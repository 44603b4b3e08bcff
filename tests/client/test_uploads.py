"""Uploads over tus through the client: per-file errors, resume without duplicates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.client.conftest import CuttingProxy, LiveServer, unique

SVS = "CMU-1-Small-Region.svs"


class Crash(Exception):
    """Stands for the script dying mid-upload (Ctrl-C, a killed process)."""


def test_a_file_failing_conversion_is_reported_while_others_complete(
        client: Any, testdata: Path, tmp_path: Path) -> None:
    folder = tmp_path / "scans"
    folder.mkdir()
    (folder / "good.jpg").symlink_to(testdata / "sample.jpg")
    (folder / "broken.tif").symlink_to(testdata / "unopenable.tiff")
    (folder / ".hidden").write_text("not uploaded")
    project = client.create_project(unique("mixed"))
    seen: list[tuple[str, int, int]] = []
    results = project.upload(folder, progress=lambda p, done, total: seen.append(
        (p.name, done, total)), state_file=tmp_path / "state.json")
    by_name = {r.path.name: r for r in results}
    assert set(by_name) == {"good.jpg", "broken.tif"}
    good, broken = by_name["good.jpg"], by_name["broken.tif"]
    assert good.ok and good.image.status == "ready" and good.image.width > 0
    assert not broken.ok and broken.error and broken.image.status == "failed"
    assert ("good.jpg", (testdata / "sample.jpg").stat().st_size,
            (testdata / "sample.jpg").stat().st_size) in seen
    assert {i.name for i in project.images()} == {"good.jpg", "broken.tif"}
    # The server keeps a failed image's original: a retry converts it again (and
    # this file fails again, with the same reason).
    job = broken.image.retry()
    assert job.status in ("queued", "running", "failed")
    assert job.wait(limit_s=60).status == "failed"
    assert client.image(broken.image.id).status == "failed"


def test_interrupted_upload_resumes_without_a_duplicate_image(
        client: Any, live_server: LiveServer, testdata: Path, tmp_path: Path) -> None:
    src = tmp_path / SVS
    src.write_bytes((testdata / SVS).read_bytes())
    size = src.stat().st_size
    state = tmp_path / "state.json"
    project = client.create_project(unique("resume"))

    def die_after_first_chunk(path: Path, done: int, total: int) -> None:
        if done > 0:
            raise Crash

    with pytest.raises(Crash):
        project.upload(src, progress=die_after_first_chunk, state_file=state,
                       chunk_size=512 * 1024)
    (entry,) = json.loads(state.read_text()).values()
    partial = client.upload_state(entry["upload_id"])
    assert 0 < partial["offset"] < size and partial["image_id"] is None
    assert list(project.images()) == []

    # A new run (a restarted script) finds the upload in the state file and resumes.
    offsets: list[int] = []
    (result,) = project.upload(src, progress=lambda p, d, t: offsets.append(d),
                               state_file=state, chunk_size=512 * 1024)
    assert result.ok and result.upload_id == entry["upload_id"]
    assert offsets[0] == partial["offset"]  # continued, not restarted
    assert [i.id for i in project.images()] == [result.image.id]
    # Running the script once more does not upload it again.
    (again,) = project.upload(src, progress=False, state_file=state)
    assert again.image.id == result.image.id
    assert len(list(project.images())) == 1
    region = result.image.region(1000, 1000, 64, 64)
    assert region.shape == (64, 64, 3)


def test_upload_refused_for_a_viewer_is_a_per_file_error(
        client: Any, live_server: LiveServer, testdata: Path, tmp_path: Path) -> None:
    from microtome_client import Client

    from tests.client.conftest import PASSWORD

    project = client.create_project(unique("readonly"))
    name = unique("viewer")
    client.create_user(name, PASSWORD)
    project.add_member(name, "viewer")
    with Client(live_server.url, username=name, password=PASSWORD) as viewer:
        (result,) = viewer.upload(testdata / "sample.jpg", project=project.id,
                                  progress=False, state_file=tmp_path / "s.json")
    assert not result.ok and "403" in result.error
    assert list(project.images()) == []


def test_dropped_connection_mid_upload_resumes_in_place(
        client: Any, live_server: LiveServer, testdata: Path, tmp_path: Path) -> None:
    from microtome_client import Client

    port = int(live_server.url.rsplit(":", 1)[1])
    proxy = CuttingProxy(port, cut_after=700_000)
    project = client.create_project(unique("dropped"))
    size = (testdata / SVS).stat().st_size
    offsets: list[int] = []
    try:
        with Client(f"http://127.0.0.1:{proxy.port}", api_key=live_server.api_key) as c:
            (result,) = c.upload(testdata / SVS, project=project.id, state_file=tmp_path / "s",
                                 progress=lambda p, d, t: offsets.append(d))
    finally:
        proxy.close()
    assert proxy.cuts == 1
    assert result.ok, result.error
    assert any(0 < o < size for o in offsets), offsets  # resumed from the server's offset
    assert offsets[-1] == size
    assert [i.id for i in project.images()] == [result.image.id]


def test_imzml_pair_uploads_as_one_image_and_a_lone_half_is_refused(
        client: Any, testdata: Path, tmp_path: Path) -> None:
    pair = [testdata / "Example_Continuous.ibd", testdata / "Example_Continuous.imzML"]
    project = client.create_project(unique("msi"))
    results = project.upload(pair, progress=False, state_file=tmp_path / "s.json")
    assert all(r.ok for r in results), [r.error for r in results]
    assert results[0].image.id == results[1].image.id  # one image for both files
    image = results[1].image
    assert image.status == "ready" and (image.width, image.height) == (3, 3)
    assert [i.name for i in project.images()] == ["Example_Continuous.imzML"]
    (lone,) = project.upload(pair[1], progress=False, state_file=tmp_path / "t.json")
    assert not lone.ok and "upload Example_Continuous.ibd with it" in lone.error
