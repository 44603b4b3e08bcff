"""The shared slide model: OME-Zarr layout contract, tile math and reader.

No aiohttp, no asyncpg here: converters, the tile server and annotations all
import this package, never each other.
"""

if __name__ != "microtome.pyramid":
    # Installed under one namespace; a bare `import pyramid` from the source tree would
    # load a second copy whose exception types and caches differ from the server's.
    raise ImportError("import microtome.pyramid, not pyramid: Microtome's packages live "
                      "under the microtome namespace (see docs/ARCHITECTURE.md)")
