"""Tile server: DZI, IIIF Image API 3.0/2.1 and extras over stored OME-Zarr pyramids."""

if __name__ != "microtome.tileserver":
    # Installed under one namespace; a bare `import tileserver` from the source tree would
    # load a second copy whose exception types and caches differ from the server's.
    raise ImportError("import microtome.tileserver, not tileserver: Microtome's packages live "
                      "under the microtome namespace (see docs/ARCHITECTURE.md)")
