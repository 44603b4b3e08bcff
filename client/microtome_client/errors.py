"""Exceptions: every server error becomes one of these, carrying its JSON body.

The server answers errors as ``{"error": message, "detail": ...}``; the
exception keeps the status, the message and the detail so scripts can branch
on the type (``except NotFound``) and still show the server's reason.
"""

from __future__ import annotations

from typing import Any


class MicrotomeError(Exception):
    """Base class of every error this package raises."""


class ConnectionFailed(MicrotomeError):
    """The server could not be reached (wrong URL, server down, timeout) after retries."""


class APIError(MicrotomeError):
    """The server answered with an error status."""

    def __init__(self, status: int, error: str, detail: Any = None, *, method: str = "",
                 url: str = "") -> None:
        self.status = status
        self.error = error
        self.detail = detail
        self.method = method
        self.url = url
        where = f" ({method} {url})" if method else ""
        extra = f": {detail}" if detail not in (None, "", {}) else ""
        super().__init__(f"{status} {error}{extra}{where}")


class BadRequest(APIError):
    """400: the request is wrong (e.g. a region outside the image)."""


class AuthenticationError(APIError):
    """401: no, wrong, revoked or expired credentials."""


class Forbidden(APIError):
    """403: authenticated, but not allowed."""


class NotFound(APIError):
    """404: no such object, or not visible to you."""


class Conflict(APIError):
    """409: conflicts with the current state (duplicate name, term in use, ...)."""


class TooLarge(APIError):
    """413: the request or its answer exceeds a server limit."""


class Unprocessable(APIError):
    """422: well-formed but invalid content (bad geometry, unknown term)."""


class RateLimited(APIError):
    """429: too many attempts; ``retry_after`` seconds to wait."""

    retry_after: float = 0.0


class ServerError(APIError):
    """5xx: the server failed or is unavailable (503 is retried first when safe)."""


class ConversionFailed(MicrotomeError):
    """An uploaded file could not be converted; ``image_id`` and the job's ``reason``."""

    def __init__(self, filename: str, reason: str, image_id: int | None = None) -> None:
        self.filename = filename
        self.reason = reason
        self.image_id = image_id
        super().__init__(f"{filename}: conversion failed: {reason}")


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest, 401: AuthenticationError, 403: Forbidden, 404: NotFound,
    409: Conflict, 413: TooLarge, 422: Unprocessable, 429: RateLimited,
}


def error_for(status: int, body: Any, *, method: str = "", url: str = "",
              retry_after: str | None = None) -> APIError:
    """The exception for an error answer; ``body`` is its decoded JSON (or text)."""
    if isinstance(body, dict) and "error" in body:
        message, detail = str(body["error"]), body.get("detail")
    else:
        message, detail = (str(body)[:500] if body else f"HTTP {status}"), None
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else APIError)
    exc = cls(status, message, detail, method=method, url=url)
    if isinstance(exc, RateLimited) and retry_after and retry_after.isdigit():
        exc.retry_after = float(retry_after)
    return exc
