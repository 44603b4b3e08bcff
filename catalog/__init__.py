"""Catalog: projects, images, accounts, uploads and conversion jobs on PostgreSQL."""

if __name__ != "microtome.catalog":
    # Installed under one namespace; a bare `import catalog` from the source tree would
    # load a second copy whose exception types and caches differ from the server's.
    raise ImportError("import microtome.catalog, not catalog: Microtome's packages live "
                      "under the microtome namespace (see docs/ARCHITECTURE.md)")
