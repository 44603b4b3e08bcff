"""Converters: every common slide/microscopy format to OME-Zarr.

Public API (used by the CLI and the upload job runner):

- `convert(src, dst, options, progress) -> ConvertResult`
- `open_source(path) -> SourceReader`, `detect(path) -> str`
- `ConvertOptions`, `Progress`, `ConvertResult`, `SourceReader`, `SourceInfo`
"""


if __name__ != "microtome.converters":
    # Installed under one namespace; a bare `import converters` from the source tree would
    # load a second copy whose exception types and caches differ from the server's.
    raise ImportError("import microtome.converters, not converters: Microtome's packages live "
                      "under the microtome namespace (see docs/ARCHITECTURE.md)")
from .base import SourceInfo, SourceReader
from .convert import ConvertOptions, ConvertResult, Progress, convert
from .sources import FORMATS, detect, open_source

__all__ = ["FORMATS", "ConvertOptions", "ConvertResult", "Progress", "SourceInfo",
           "SourceReader", "convert", "detect", "open_source"]
