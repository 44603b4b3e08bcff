"""Annotations: geometries and terms on images, viewport queries, GeoJSON in and out."""

if __name__ != "microtome.annotations":
    # Installed under one namespace; a bare `import annotations` from the source tree would
    # load a second copy whose exception types and caches differ from the server's.
    raise ImportError("import microtome.annotations, not annotations: Microtome's packages live "
                      "under the microtome namespace (see docs/ARCHITECTURE.md)")
