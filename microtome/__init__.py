"""Microtome: CLI entry point and application assembly (thin on purpose)."""

__version__ = "0.1.0"
