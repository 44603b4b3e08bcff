"""Bad input: one-line error naming the file and the reason, exit 1, nothing left
behind, never a traceback or a hang.  Each case runs the real CLI in a subprocess."""

from __future__ import annotations

import errno
import os
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile

from microtome.converters import ConvertOptions, convert
from microtome.pyramid.errors import SourceError, StorageError

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str | Path, prefix: list[str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    cmd = [*(prefix or []), sys.executable, "-m", "microtome.converters.cli", *map(str, args)]
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200")
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def assert_clean_failure(src: Path, outdir: Path, reason: str,
                         proc: subprocess.CompletedProcess[str] | None = None) -> None:
    proc = proc or run_cli("convert", src, "-o", outdir)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert str(src) in errors[0] and reason in errors[0], errors[0]
    leftovers = list(outdir.iterdir()) if outdir.exists() else []
    assert leftovers == [], leftovers


def test_truncated_jpeg(testdata: Path, tmp_path: Path) -> None:
    assert_clean_failure(testdata / "truncated.jpg", tmp_path / "out", "truncated")


def test_damaged_svs_tiles(testdata: Path, tmp_path: Path) -> None:
    assert_clean_failure(testdata / "unreadable.svs", tmp_path / "out", "JPEG")


def test_unsupported_tiff_compression(testdata: Path, tmp_path: Path) -> None:
    assert_clean_failure(testdata / "unopenable.tiff", tmp_path / "out",
                         "unsupported TIFF compression")


def test_text_file_named_tif(testdata: Path, tmp_path: Path) -> None:
    src = tmp_path / "slide.tif"
    shutil.copy(testdata / "notanimage.txt", src)
    assert_clean_failure(src, tmp_path / "out", "not a recognised image format")


def test_zip_without_a_slide(tmp_path: Path) -> None:
    src = tmp_path / "upload.zip"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("notes.txt", "hello")
        zf.writestr("data/values.csv", "1,2,3\n")
    assert_clean_failure(src, tmp_path / "out", "contains no recognised slide")


def test_damaged_zip(tmp_path: Path) -> None:
    src = tmp_path / "upload.zip"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("a.png", b"x" * 1000)
    data = bytearray(src.read_bytes())
    src.write_bytes(bytes(data[: len(data) // 2]))
    assert_clean_failure(src, tmp_path / "out", "zip")


def test_dicom_folder_missing_instances(testdata: Path, tmp_path: Path) -> None:
    folder = tmp_path / "series"
    folder.mkdir()
    shutil.copy(testdata / "boxes_1.dcm", folder)  # the full-resolution instance is missing
    assert_clean_failure(folder, tmp_path / "out", "instances are missing")


def _tiff_header_claiming(width: int, height: int) -> bytes:
    """A little-endian striped TIFF whose header claims width x height 8-bit gray."""
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1),
               (262, 3, 1, 1), (273, 4, 1, 8 + 2 + 12 * 9 + 4), (277, 3, 1, 1),
               (278, 4, 1, height), (279, 4, 1, 16)]
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        ifd += struct.pack("<HHII", tag, typ, count, value)
    ifd += struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x00" * 16


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def test_absurd_dimensions_tiff(tmp_path: Path) -> None:
    src = tmp_path / "huge.tif"
    src.write_bytes(_tiff_header_claiming(10**7, 10**7))
    assert_clean_failure(src, tmp_path / "out", "implausibly large")


def test_absurd_dimensions_png(tmp_path: Path) -> None:
    src = tmp_path / "huge.png"
    ihdr = struct.pack(">IIBBBBB", 10**7, 10**7, 8, 2, 0, 0, 0)
    src.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
                    + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + _png_chunk(b"IEND", b""))
    assert_clean_failure(src, tmp_path / "out", "implausibly large")


def test_decompression_bomb_png(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """16000 x 16000 gray PNG of zeros: 256 MB of pixels from a ~250 kB file,
    refused under a 100 MP limit (giant pictures convert in bands by default)."""
    monkeypatch.setenv("MICROTOME_MAX_IMAGE_PIXELS", "100000000")
    w = h = 16000
    comp = zlib.compressobj(9)
    row = b"\x00" * (w + 1)
    body = b"".join(comp.compress(row) for _ in range(h)) + comp.flush()
    src = tmp_path / "bomb.png"
    src.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h,
                                                                            8, 0, 0, 0, 0))
                    + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b""))
    assert src.stat().st_size < 1_000_000
    assert_clean_failure(src, tmp_path / "out", "decompression bomb")


def test_damaged_tile_in_the_middle_of_a_tiled_tiff(tmp_path: Path) -> None:
    """Fails after some shards were written: the partial output must go."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, size=(1024, 1024, 3), dtype=np.uint8)
    src = tmp_path / "damaged.tif"
    tifffile.imwrite(src, img, tile=(256, 256), compression="jpeg", photometric="rgb")
    with tifffile.TiffFile(src) as tif:
        page = tif.pages[0]
        off, n = page.dataoffsets[10], page.databytecounts[10]
    data = bytearray(src.read_bytes())
    data[off + 2:off + n] = b"\x00\xff" * ((n - 2) // 2) + b"\x00" * ((n - 2) % 2)
    src.write_bytes(bytes(data))
    out = tmp_path / "out"
    proc = run_cli("convert", src, "-o", out, "--tile-size", "128")
    assert_clean_failure(src, out, "damaged image data", proc)


def test_unreadable_permissions(testdata: Path, tmp_path: Path) -> None:
    """Tests run as root, and root ignores file modes (CAP_DAC_OVERRIDE).  Run the
    CLI with those capabilities dropped (setpriv) so the mode really denies it."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() == 0 and setpriv is None:
        pytest.fail("setpriv (util-linux) is needed to drop root's file-access override")
    src = tmp_path / "secret.svs"
    shutil.copy(testdata / "small.svs", src)
    src.chmod(0)
    prefix = ([str(setpriv), "--inh-caps=-dac_override,-dac_read_search",
               "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else [])
    out = tmp_path / "out"
    out.mkdir()
    proc = run_cli("convert", src, "-o", out, prefix=prefix)
    assert_clean_failure(src, out, "permission denied", proc)


@pytest.fixture
def tiny_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A 1 MiB tmpfs (we run as root in CI); skipped only where mounting is not allowed."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()}); "
                    "test_full_disk_simulated covers the code path")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk(testdata: Path, tiny_disk: Path) -> None:
    """CMU-1-Small-Region needs ~2.5 MB of output; the disk has 1 MiB."""
    src = testdata / "CMU-1-Small-Region.svs"
    proc = run_cli("convert", src, "-o", tiny_disk)
    assert_clean_failure(src, tiny_disk, "no space left on device", proc)


def test_full_disk_simulated(testdata: Path, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The same path without a mount: the shard writer hits ENOSPC half way."""
    from microtome.converters import sinks

    calls = {"n": 0}
    real = sinks.V3Sink.write_shard

    def failing(self, *a, **kw):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *a, **kw)

    monkeypatch.setattr(sinks.V3Sink, "write_shard", failing)
    dst = tmp_path / "x.ome.zarr"
    with pytest.raises(StorageError, match="no space left on device"):
        convert(testdata / "CMU-1-Small-Region.svs", dst,
                ConvertOptions(shard_size=512))
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_removes_partial_output(testdata: Path, tmp_path: Path) -> None:
    dst = tmp_path / "x.ome.zarr"
    seen = []

    def interrupt(p):  # type: ignore[no-untyped-def]
        seen.append(p)
        if p.stage == "pyramid":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert(testdata / "CMU-1-Small-Region.svs", dst, ConvertOptions(shard_size=512),
                progress=interrupt)
    assert seen and list(tmp_path.iterdir()) == []


def test_sigint_to_cli_leaves_nothing(tmp_path: Path) -> None:
    """A real SIGINT to the CLI while it converts a larger slide."""
    import signal
    import time

    from microtome.converters.synthetic import write_slide

    src = write_slide(tmp_path / "big.tiff", 4000, 3000)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "microtome.converters.cli", "convert", str(src),
                             "-o", str(out), "--workers", "1", "--tile-size", "64"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if out.exists() and any(out.iterdir()):
            break
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "Traceback" not in stderr
    assert list(out.iterdir()) == []


def test_source_error_messages_are_one_line(testdata: Path) -> None:
    from microtome.converters import open_source
    for name in ("truncated.jpg", "unopenable.tiff", "notanimage.txt"):
        with pytest.raises(SourceError) as ei:
            open_source(testdata / name)
        assert "\n" not in ei.value.message and ei.value.message
