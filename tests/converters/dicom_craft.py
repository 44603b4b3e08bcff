"""DICOM WSI instances in the layouts other scanners write, built with pydicom
on the metadata of the real sample `boxes_0.dcm` (patient, study, equipment):
TILED_SPARSE frames with per-frame positions, several focal planes (z) and
optical paths (fluorescence channels), uncompressed so pixels are known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid


def _item(**kw: object) -> Dataset:
    ds = Dataset()
    for k, v in kw.items():
        setattr(ds, k, v)
    return ds


def write_wsi(dst: Path, base: Path, planes: np.ndarray, tile: int, z_um: list[float],
              paths: list[str], sparse: bool = True, series_uid: str | None = None,
              image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "VOLUME", "NONE"),
              skip_tiles: set[tuple[int, int]] = frozenset()) -> str:  # type: ignore[assignment]
    """``planes``: (paths, z, h, w) uint8 monochrome, or (1, z, h, w, 3) RGB."""
    ds = pydicom.dcmread(base, stop_before_pixels=True)
    npath, nz, h, w = planes.shape[:4]
    rgb = planes.ndim == 5
    for tag in ("PerFrameFunctionalGroupsSequence", "DimensionIndexSequence",
                "LossyImageCompressionRatio", "LossyImageCompressionMethod"):
        if tag in ds:
            delattr(ds, tag)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if series_uid:
        ds.SeriesInstanceUID = series_uid
    ds.ImageType = list(image_type)
    ds.LossyImageCompression = "00"
    ds.SamplesPerPixel = 3 if rgb else 1
    ds.PhotometricInterpretation = "RGB" if rgb else "MONOCHROME2"
    if rgb:
        ds.PlanarConfiguration = 0
    elif "PlanarConfiguration" in ds:
        del ds.PlanarConfiguration
    ds.Rows = ds.Columns = tile
    ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows = w, h
    ds.TotalPixelMatrixFocalPlanes = nz
    ds.NumberOfOpticalPaths = npath
    ds.DimensionOrganizationType = "TILED_SPARSE" if sparse else "TILED_FULL"
    spacing = 0.5
    shared = ds.SharedFunctionalGroupsSequence[0]
    shared.PixelMeasuresSequence[0].PixelSpacing = [spacing / 1000, spacing / 1000]
    shared.PixelMeasuresSequence[0].SpacingBetweenSlices = (
        (z_um[1] - z_um[0]) / 1000 if nz > 1 else 0)
    ds.OpticalPathSequence = Sequence([_item(
        OpticalPathIdentifier=p, OpticalPathDescription=p,
        IlluminationTypeCodeSequence=ds.OpticalPathSequence[0].IlluminationTypeCodeSequence,
        IlluminationWaveLength=488.0 + 100 * i if not rgb else None,
        ICCProfile=ds.OpticalPathSequence[0].get("ICCProfile") if rgb else None,
        IlluminationColorCodeSequence=ds.OpticalPathSequence[0].get(
            "IlluminationColorCodeSequence"))
        for i, p in enumerate(paths)])
    for item in ds.OpticalPathSequence:
        for key in ("IlluminationWaveLength", "ICCProfile", "IlluminationColorCodeSequence"):
            if key in item and item.get(key) is None:
                delattr(item, key)
    frames, per_frame = [], []
    for p in range(npath):
        for z in range(nz):
            for ty in range(0, h, tile):
                for tx in range(0, w, tile):
                    if (tx // tile, ty // tile) in skip_tiles:
                        continue
                    block = np.zeros((tile, tile, 3) if rgb else (tile, tile), np.uint8)
                    part = planes[p, z, ty:ty + tile, tx:tx + tile]
                    block[:part.shape[0], :part.shape[1]] = part
                    frames.append(block.tobytes())
                    per_frame.append(_item(
                        PlanePositionSlideSequence=Sequence([_item(
                            ColumnPositionInTotalImagePixelMatrix=tx + 1,
                            RowPositionInTotalImagePixelMatrix=ty + 1,
                            XOffsetInSlideCoordinateSystem=20.0 + tx * spacing / 1000,
                            YOffsetInSlideCoordinateSystem=40.0 + ty * spacing / 1000,
                            ZOffsetInSlideCoordinateSystem=z_um[z])]),
                        OpticalPathIdentificationSequence=Sequence([_item(
                            OpticalPathIdentifier=paths[p])])))
    ds.NumberOfFrames = len(frames)
    if sparse:
        ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    ds.PixelData = b"".join(frames)
    ds["PixelData"].VR = "OB"
    ds.save_as(dst, enforce_file_format=True)
    return str(ds.SeriesInstanceUID)
