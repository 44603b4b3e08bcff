"""Python client for Microtome: ``Client`` (synchronous) and ``AsyncClient``."""

from ._version import __version__
from .core import AsyncClient
from .errors import (
    APIError,
    AuthenticationError,
    BadRequest,
    Conflict,
    ConnectionFailed,
    ConversionFailed,
    Forbidden,
    MicrotomeError,
    NotFound,
    RateLimited,
    ServerError,
    TooLarge,
    Unprocessable,
)
from .image import Image
from .models import (
    Analysis,
    Annotation,
    ApiKey,
    App,
    ImageMetadata,
    Job,
    Member,
    Session,
    ShareLink,
    Term,
    TrashItem,
    User,
)
from .project import Project
from .sync import Client
from .transport import RetryPolicy
from .uploads import UploadResult

__all__ = [
    "APIError", "Analysis", "Annotation", "ApiKey", "App", "AsyncClient",
    "AuthenticationError", "BadRequest",
    "Client", "Conflict", "ConnectionFailed", "ConversionFailed", "Forbidden", "Image",
    "ImageMetadata", "Job", "Member", "MicrotomeError", "NotFound", "Project", "RateLimited",
    "RetryPolicy", "ServerError", "Session", "ShareLink", "Term", "TooLarge", "TrashItem",
    "Unprocessable",
    "UploadResult", "User", "__version__",
]
