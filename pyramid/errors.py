"""Domain errors shared by every package.

They carry no HTTP status: `core.http` maps them to responses in one
table, and the CLI maps them to one-line messages.  Messages must be safe to
show to a remote user (no filesystem paths).
"""

from __future__ import annotations

from typing import Any


class MicrotomeError(Exception):
    """Base class; `detail` is extra JSON-serialisable context for clients."""

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class InvalidRequest(MicrotomeError):
    """The request is syntactically or semantically wrong (HTTP 400)."""


class Unauthenticated(MicrotomeError):
    """No or invalid credentials (HTTP 401)."""


class Forbidden(MicrotomeError):
    """Credentials are fine but not allowed to do this (HTTP 403)."""


class NotFound(MicrotomeError):
    """The image, tile, object or route does not exist (HTTP 404)."""


class Conflict(MicrotomeError):
    """Duplicate name, state conflict (HTTP 409)."""


class UnsupportedMediaType(InvalidRequest):
    """A body in a format the route does not take, e.g. a form post to a JSON route (415)."""


class TooLarge(MicrotomeError):
    """A body, upload or requested output exceeds a limit (HTTP 413)."""


class RangeNotSatisfiable(MicrotomeError):
    """A byte range or upload offset does not match (HTTP 416)."""


class TooManyRequests(MicrotomeError):
    """Too many attempts, e.g. failed logins; retry after `retry_after` seconds (HTTP 429)."""

    def __init__(self, message: str, detail: Any = None, retry_after: int = 60) -> None:
        super().__init__(message, detail)
        self.retry_after = max(1, int(retry_after))


class Unprocessable(MicrotomeError):
    """Well-formed but semantically invalid content, e.g. bad geometry (HTTP 422)."""


class NotImplementedFeature(MicrotomeError):
    """A valid request for a feature we do not offer (HTTP 501)."""


class Unavailable(MicrotomeError):
    """A dependency (database, storage) is temporarily unavailable (HTTP 503);
    clients may retry after `retry_after` seconds (the Retry-After header)."""

    def __init__(self, message: str, detail: Any = None, retry_after: int = 5) -> None:
        super().__init__(message, detail)
        self.retry_after = max(1, int(retry_after))


class SourceError(MicrotomeError):
    """An input file cannot be read: corrupt, truncated, unsupported, hostile.

    Raised by readers and the converter; the message names the reason, the
    caller adds the file name.
    """


class UnsupportedFormat(SourceError):
    """No reader recognises the content."""


class StorageError(MicrotomeError):
    """A stored pyramid is damaged or missing on disk."""


class InsufficientStorage(MicrotomeError):
    """The server's disk is (nearly) full: nothing was lost, retry once space is freed
    (HTTP 507)."""


class DiskFull(StorageError):
    """Writing output failed because the filesystem is full (ENOSPC / quota)."""


class RequestTimeout(MicrotomeError):
    """The client stopped sending the request body (HTTP 408)."""
