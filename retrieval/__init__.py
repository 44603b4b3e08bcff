"""Content-based retrieval: descriptors of annotated regions, nearest neighbours and
term suggestions, inside PostgreSQL (pgvector when available)."""

if __name__ != "microtome.retrieval":
    # Installed under one namespace; a bare `import retrieval` from the source tree would
    # load a second copy whose exception types and caches differ from the server's.
    raise ImportError("import microtome.retrieval, not retrieval: Microtome's packages live "
                      "under the microtome namespace (see docs/ARCHITECTURE.md)")
