"""`microtome user add` and `microtome import`, run as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg

from microtome.catalog.security import verify_password

REPO = Path(__file__).resolve().parents[2]


def _run(args: list[str], database_url: str, var: Path, stdin: str = "",
         timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "MICROTOME_VAR": str(var),
           "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "microtome", *args], input=stdin, env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


async def test_user_add(database_url: str, tmp_path: Path) -> None:
    out = _run(["user", "add", "root", "--admin", "--password-stdin"], database_url, tmp_path,
               stdin="s3cret-password\n")
    assert out.returncode == 0, out.stderr
    assert "created administrator root" in out.stdout
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT is_admin, password_hash FROM users WHERE username = 'root'")
    finally:
        await conn.close()
    assert row["is_admin"] is True and row["password_hash"].startswith("$argon2id$")
    assert verify_password(row["password_hash"], "s3cret-password")
    again = _run(["user", "add", "ROOT", "--password-stdin"], database_url, tmp_path,
                 stdin="another-password\n")
    assert again.returncode == 1 and "already exists" in again.stderr
    bad = _run(["user", "add", "with space", "--password-stdin"], database_url, tmp_path,
               stdin="long-enough-pw\n")
    assert bad.returncode == 2 and bad.stderr.startswith("error:")
    short = _run(["user", "add", "bob", "--password-stdin"], database_url, tmp_path,
                 stdin="short\n")
    assert short.returncode == 2


async def test_import_folder(database_url: str, tmp_path: Path, testdata: Path) -> None:
    folder = tmp_path / "incoming"
    folder.mkdir()
    for name in ("CMU-1-Small-Region.svs", "notanimage.txt", "boxes_0.dcm", "boxes_1.dcm"):
        (folder / name).symlink_to(testdata / name)
    (folder / ".hidden").write_text("skip me")
    var = tmp_path / "var"
    out = _run(["import", str(folder), "--project", "Lab", "--quiet"], database_url, var)
    assert out.returncode == 1, out.stdout + out.stderr
    # The two DICOM files are one series, hence one image.
    assert "imported 2 of 3 file(s) into project 'Lab'" in out.stdout
    assert "notanimage.txt: failed:" in out.stderr
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT i.id, i.name, i.status, i.width FROM images i JOIN project_images pi"
            " ON pi.image_id = i.id JOIN projects p ON p.id = pi.project_id"
            " WHERE p.name = 'Lab' ORDER BY i.name")
        assert [(r["name"], r["status"]) for r in rows] == [
            ("CMU-1-Small-Region.svs", "ready"),
            ("boxes_0 (DICOM series, 2 files)", "ready"), ("notanimage.txt", "failed")]
        ready = rows[0]
        assert ready["width"] == 2220
        assert (var / "images" / str(ready["id"]) / "image.ome.zarr" / "zarr.json").is_file()
        # Sources of an import are left where they were.
        assert (testdata / "CMU-1-Small-Region.svs").exists()
        # A second run does not duplicate what is already imported.
        again = _run(["import", str(folder), "--project", "Lab", "--quiet"], database_url, var)
        assert "CMU-1-Small-Region.svs" not in again.stderr.replace("already imported", "")
        n = await conn.fetchval("SELECT count(*) FROM images WHERE name = 'CMU-1-Small-Region.svs'")
        assert n == 1
    finally:
        await conn.close()
    missing = _run(["import", str(tmp_path / "nope"), "--project", "Lab"], database_url, var)
    assert missing.returncode == 2


async def test_import_owner(database_url: str, tmp_path: Path, testdata: Path) -> None:
    """--owner names an existing user, who becomes the project's manager and the images'
    uploader; an unknown or empty name is a usage error that creates nothing."""
    folder = tmp_path / "incoming"
    folder.mkdir()
    (folder / "notanimage.txt").symlink_to(testdata / "notanimage.txt")
    var = tmp_path / "var"
    unknown = _run(["import", str(folder), "--project", "Owned", "--owner", "nobody",
                    "--quiet", "--workers", "0"], database_url, var)
    assert unknown.returncode == 2, unknown.stderr
    assert "no user named 'nobody'" in unknown.stderr and "microtome user add" in unknown.stderr
    empty = _run(["import", str(folder), "--project", "Owned", "--owner", " "], database_url,
                 var)
    assert empty.returncode == 2 and "--owner" in empty.stderr
    conn = await asyncpg.connect(database_url)
    try:
        assert not await conn.fetchval("SELECT count(*) FROM projects WHERE name = 'Owned'")
        uid = await conn.fetchval("INSERT INTO users (username) VALUES ('Pathologist')"
                                  " RETURNING id")
        out = _run(["import", str(folder), "--project", "Owned", "--owner", "pathologist",
                    "--quiet"], database_url, var)
        assert out.returncode == 1, out.stderr  # the one file is not an image
        members = await conn.fetch(
            "SELECT m.user_id, m.role FROM project_members m JOIN projects p"
            " ON p.id = m.project_id WHERE p.name = 'Owned'")
        assert [(r["user_id"], r["role"]) for r in members] == [(uid, "manager")]
        assert await conn.fetchval("SELECT owner_id FROM images") == uid
    finally:
        await conn.close()
