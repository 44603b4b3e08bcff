"""What the tile path needs to know about one image, whoever resolved it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path


@dataclass(frozen=True)
class ImageRef:
    """Where an image lives and which version of its pixels it is.

    ``version`` changes whenever the pixels change; it is part of every
    cache key and ETag.
    """

    #: A local folder, or the URL of an image in object storage (``s3://...``).
    path: Path | str
    version: str
    #: Access was granted by a credential (session, key, token, share link):
    #: shared caches must not keep the response.
    private: bool = False

    @cached_property
    def key(self) -> tuple[str, str]:
        """(location as text, version): the cheap hashable identity of these pixels.

        Cache keys use it rather than ``path``: a `Path` hashes and compares far
        slower than a string, and every resolution makes a new one.
        """
        return str(self.path), self.version
