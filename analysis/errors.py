"""Analysis errors (no HTTP status here; the server maps them in its one table)."""

from __future__ import annotations


class AnalysisError(Exception):
    """An analysis could not run; ``message`` is one line a user understands."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownApp(AnalysisError):
    """No installed app has this name (or this version)."""


class InvalidParams(AnalysisError):
    """Parameters do not match the app's schema; ``errors`` maps a field to its problem."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("invalid parameters: " + "; ".join(
            f"{k}: {v}" for k, v in sorted(errors.items())))
        self.errors = errors
