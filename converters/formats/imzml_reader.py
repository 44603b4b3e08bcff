"""imzML mass spectrometry images as multi-channel float images.

Channel 0 is the total ion count (TIC) of each pixel; the others are ion
images: the summed intensity within ``tol`` of an m/z value, either the
values chosen at conversion (``--mz``) or the N most intense peaks of the
mean spectrum.  The ion images are computed in one pass over the .ibd when
the reader is configured (MSI grids are small: thousands to a million
pixels), and the spectra themselves are kept beside the pyramid
(`pyramid.spectra`) so any other m/z can be rendered later.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from microtome.pyramid.errors import SourceError

from ..base import ChannelInfo, SourceInfo, SourceReader
from .imzml_parse import ImzmlDoc, Spectrum, normalise_uuid, parse_imzml, read_array
from .vendor_meta import iso_date

#: Peaks shown as channels when no m/z is chosen.
DEFAULT_TOP_PEAKS = 8
#: Largest (pixels x channels) held as float32 during conversion.
MAX_ION_VALUES = 1 << 28


def is_imzml(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return text.startswith((b"<?xml", b"<mzML")) and b"<mzML" in head


def find_ibd(imzml: Path) -> Path | None:
    for cand in imzml.parent.iterdir():
        if cand.stem == imzml.stem and cand.suffix.lower() == ".ibd" and cand.is_file():
            return cand
    return None


def xml_half(paths: Sequence[Path]) -> Path | None:
    """Of two files named without extensions (an uploaded pair), the one that is
    the imzML XML when exactly one of them is; else None."""
    if len(paths) != 2:
        return None
    xml = []
    for path in paths:
        with open(path, "rb") as fh:
            if is_imzml(fh.read(512)):
                xml.append(path)
    return xml[0] if len(xml) == 1 else None


def split_pair(paths: Sequence[Path]) -> tuple[Path, Path]:
    """(imzML, ibd) from one .imzML path or an uploaded pair."""
    ibd = [p for p in paths if p.suffix.lower() == ".ibd"]
    if not ibd and len(paths) == 2 and (xml := xml_half(paths)) is not None:
        ibd = [p for p in paths if p != xml]
    imz = [p for p in paths if p not in ibd]
    if len(imz) != 1:
        raise SourceError("expected one .imzML file and its .ibd")
    if ibd:
        return imz[0], ibd[0]
    found = find_ibd(imz[0])
    if found is None:
        raise SourceError(f"imzML without its .ibd data file (expected {imz[0].stem}.ibd "
                          "beside it, or both in one zip)")
    return imz[0], found


class ImzmlReader(SourceReader):
    def __init__(self, paths: Sequence[Path]) -> None:
        self._imzml, self._ibd = split_pair(paths)
        self.doc: ImzmlDoc = parse_imzml(self._imzml)
        self._ibd_size = os.path.getsize(self._ibd)
        with open(self._ibd, "rb") as fh:
            head = fh.read(16)
        if len(head) < 16 or head.hex() != self.doc.uuid:
            raise SourceError("the .ibd file does not belong to this imzML (its UUID differs)")
        self._mz_axis: np.ndarray | None = None
        if self.doc.mode == "continuous":
            with open(self._ibd, "rb") as fh:
                self._mz_axis = read_array(fh, self.doc.spectra[0].mz, self._ibd_size)
        self.tol = 0.0
        self.mzs: list[float] = []
        self._images: np.ndarray | None = None
        self._set_info()

    # -- configuration --------------------------------------------------------
    def configure(self, **choices: Any) -> None:
        """Choose the ion-image channels (then computed in one pass): ``mz``
        values, their half-width ``tol``, else the ``top_peaks`` strongest."""
        mz: Sequence[float] = choices.get("mz") or ()
        tol: float | None = choices.get("tol")
        top_peaks = int(choices.get("top_peaks", DEFAULT_TOP_PEAKS))
        self.tol = tol if tol is not None and tol > 0 else self._default_tol()
        mean_mz, mean = self._mean_spectrum()
        self.mzs = [float(m) for m in mz] if mz else _top_peaks(mean_mz, mean, top_peaks,
                                                                self.tol)
        if self.doc.width * self.doc.height * (1 + len(self.mzs)) > MAX_ION_VALUES:
            raise SourceError("too many pixels x channels for an imzML conversion")
        self._images = self._ion_images()
        self._set_info()

    def _default_tol(self) -> float:
        if self._mz_axis is not None and len(self._mz_axis) > 1:
            return float(max(1e-4, 2 * np.median(np.diff(self._mz_axis))))
        return 0.01

    def _set_info(self) -> None:
        d = self.doc
        channels = [ChannelInfo("TIC", "FFFFFF")] + [
            ChannelInfo(f"m/z {m:.4f} ± {self.tol:.4g}", None) for m in self.mzs]
        self.info = SourceInfo(
            format="imzml", vendor="imzml", width=d.width, height=d.height, dtype="float32",
            rgb=False, size_c=len(channels), levels=[(d.width, d.height)],
            pixel_size_um=d.pixel_size_um, channels=channels,
            notes=[f"{d.mode} mode, {len(d.spectra)} spectra; spectra kept beside the image"],
            acquired=iso_date(d.params.get("acquired")), scanner=d.params.get("instrument"))
        if self._mz_axis is not None and len(self._mz_axis):
            self.info.notes.append(f"m/z {float(self._mz_axis[0]):.4f}-"
                                   f"{float(self._mz_axis[-1]):.4f}, "
                                   f"{len(self._mz_axis)} points")
        if not self.mzs:
            self.info.notes.append("ion-image channels are chosen at conversion "
                                   "(--mz, or the strongest --top-peaks)")

    # -- reading --------------------------------------------------------------
    def spectra(self) -> Iterator[tuple[Spectrum, np.ndarray, np.ndarray]]:
        """Every spectrum with its (m/z, intensity) arrays, in file order."""
        with open(self._ibd, "rb") as fh:
            for s in self.doc.spectra:
                mz = (self._mz_axis if self._mz_axis is not None
                      else read_array(fh, s.mz, self._ibd_size))
                inten = read_array(fh, s.intensity, self._ibd_size)
                if len(inten) != len(mz):
                    raise SourceError("imzML: m/z and intensity arrays differ in length")
                yield s, mz, inten

    def _mean_spectrum(self) -> tuple[np.ndarray, np.ndarray]:
        if self._mz_axis is not None:
            total = np.zeros(len(self._mz_axis))
            for _s, _mz, inten in self.spectra():
                total += inten
            return self._mz_axis, total
        # Processed: a histogram of all m/z weighted by intensity, at tol/2.
        lo, hi = np.inf, -np.inf
        for _s, mz, _i in self.spectra():
            if len(mz):
                lo, hi = min(lo, float(mz.min())), max(hi, float(mz.max()))
        if not np.isfinite(lo):
            return np.zeros(1), np.zeros(1)
        step = self.tol / 2
        nbins = int(min(2_000_000, max(1, (hi - lo) / step + 1)))
        edges = np.linspace(lo, hi + step, nbins + 1)
        total = np.zeros(nbins)
        for _s, mz, inten in self.spectra():
            total += np.histogram(mz, bins=edges, weights=inten)[0]
        return (edges[:-1] + edges[1:]) / 2, total

    def _ion_images(self) -> np.ndarray:
        d = self.doc
        out = np.zeros((d.height, d.width, 1 + len(self.mzs)), np.float32)
        targets = np.asarray(self.mzs, np.float64)
        for s, mz, inten in self.spectra():
            out[s.y, s.x, 0] = float(np.sum(inten, dtype=np.float64))
            if len(targets):
                order = mz if np.all(np.diff(mz) >= 0) else None
                if order is None:
                    idx = np.argsort(mz)
                    mz, inten = mz[idx], inten[idx]
                a = np.searchsorted(mz, targets - self.tol, side="left")
                b = np.searchsorted(mz, targets + self.tol, side="right")
                csum = np.concatenate([[0.0], np.cumsum(inten, dtype=np.float64)])
                out[s.y, s.x, 1:] = csum[b] - csum[a]
        return out

    def read_region(self, x: int, y: int, w: int, h: int, t: int = 0, z: int = 0,
                    channels: list[int] | None = None) -> np.ndarray:
        if self._images is None:
            self.configure()
        assert self._images is not None
        block = self._images[y:y + h, x:x + w]
        if channels is not None:
            block = block[..., channels]
        return np.ascontiguousarray(block)

    def write_beside(self, root: Path) -> None:
        from microtome.pyramid.spectra import PIXEL_CHUNK, SpectraWriter

        d = self.doc
        attrs = {"tolerance": self.tol, "channels_mz": self.mzs}
        if d.mode == "continuous":
            assert self._mz_axis is not None
            writer = SpectraWriter(root, d.mode, d.width, d.height, self._mz_axis, 0, attrs)
            by_pixel = {s.y * d.width + s.x: s for s in d.spectra}
            n = len(self._mz_axis)
            with open(self._ibd, "rb") as fh:
                for first in range(0, d.width * d.height, PIXEL_CHUNK):
                    count = min(PIXEL_CHUNK, d.width * d.height - first)
                    block = np.zeros((count, n), np.float32)
                    present = np.zeros(count, bool)
                    for i in range(count):
                        s = by_pixel.get(first + i)
                        if s is not None:
                            block[i] = read_array(fh, s.intensity, self._ibd_size)
                            present[i] = True
                    writer.write_block(first, block, present)
        else:
            total = sum(s.mz.length for s in d.spectra)
            writer = SpectraWriter(root, d.mode, d.width, d.height, None, total, attrs)
            ordered = sorted(d.spectra, key=lambda s: (s.y, s.x))
            with open(self._ibd, "rb") as fh:
                for s in ordered:
                    mz = read_array(fh, s.mz, self._ibd_size)
                    inten = read_array(fh, s.intensity, self._ibd_size)
                    idx = np.argsort(mz, kind="stable")
                    writer.append(s.x, s.y, mz[idx], inten[idx])
        writer.finish()

    def original_metadata(self) -> dict[str, Any]:
        d = self.doc
        return {"mode": d.mode, "uuid": d.uuid, "spectra": len(d.spectra),
                "grid": [d.width, d.height], "params": d.params,
                "ion_images": {"tolerance": self.tol, "mz": self.mzs}}


def _top_peaks(mz: np.ndarray, mean: np.ndarray, n: int, tol: float) -> list[float]:
    """The n highest local maxima of the mean spectrum, at least 2 tol apart."""
    if n <= 0 or len(mean) < 3:
        return []
    inner = (mean[1:-1] > mean[:-2]) & (mean[1:-1] >= mean[2:]) & (mean[1:-1] > 0)
    cand = np.nonzero(inner)[0] + 1
    chosen: list[float] = []
    for i in cand[np.argsort(mean[cand])[::-1]]:
        if all(abs(mz[i] - c) > 2 * tol for c in chosen):
            chosen.append(float(mz[i]))
            if len(chosen) == n:
                break
    return sorted(chosen)


def check_ibd_alone(path: Path) -> None:
    """An .ibd given without its .imzML: say what is missing."""
    if path.suffix.lower() == ".ibd":
        raise SourceError("an .ibd file is only the data half of an imzML pair: "
                          "give the .imzML file (with the .ibd beside it, or both in a zip)")


__all__ = ["ImzmlReader", "check_ibd_alone", "find_ibd", "is_imzml", "normalise_uuid",
           "split_pair"]
