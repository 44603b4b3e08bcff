"""The bottom layer every package may use: settings and the HTTP error table."""

if __name__ != "microtome.core":
    # Installed under one namespace; a bare `import core` from the source tree would
    # load a second copy whose exception types and caches differ from the server's.
    raise ImportError("import microtome.core, not core: Microtome's packages live "
                      "under the microtome namespace (see docs/ARCHITECTURE.md)")
