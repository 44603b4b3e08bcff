"""Installed apps: everything published in the entry-point group ``microtome.apps``.

An entry point names an app object or a zero-argument factory returning one.
A broken third-party package must not hide the others: its load error is
kept and reported (``broken_apps``), never raised from the listing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

from .descriptor import AppDescriptor
from .errors import UnknownApp

ENTRY_POINT_GROUP = "microtome.apps"


@runtime_checkable
class App(Protocol):
    descriptor: AppDescriptor

    def run(self, ctx: Any) -> Iterable[Any]:
        """Analyse ``ctx.raster`` (a `RunContext`) and return `Feature`s (a list, or a
        generator yielding them as they are found: see `runner.stream_app`)."""
        ...


def _load(ep: Any) -> App:
    obj = ep.load()
    # A class (whose attributes alone would pass the protocol check) or a factory.
    if isinstance(obj, type) or (not isinstance(obj, App) and callable(obj)):
        obj = obj()
    if not isinstance(obj, App) or not isinstance(obj.descriptor, AppDescriptor):
        raise TypeError(f"entry point {ep.name} = {ep.value} is not an app "
                        "(needs .descriptor: AppDescriptor and .run(ctx))")
    return obj


def discover(loader: Callable[[], Any] | None = None) -> tuple[dict[str, App], dict[str, str]]:
    """(apps by name, load errors by entry-point name)."""
    eps = loader() if loader else entry_points(group=ENTRY_POINT_GROUP)
    apps: dict[str, App] = {}
    broken: dict[str, str] = {}
    for ep in eps:
        try:
            app = _load(ep)
        except Exception as e:  # a third-party bug, reported, not fatal
            broken[ep.name] = f"{type(e).__name__}: {e}"
            continue
        name = app.descriptor.name
        if name in apps:
            broken[ep.name] = f"duplicate app name {name!r}"
            continue
        apps[name] = app
    return apps, broken


def available_apps() -> dict[str, App]:
    return discover()[0]


def broken_apps() -> dict[str, str]:
    return discover()[1]


def get_app(name: str, version: str | None = None,
            apps: dict[str, App] | None = None) -> App:
    apps = available_apps() if apps is None else apps
    app = apps.get(name)
    if app is None:
        known = ", ".join(sorted(apps)) or "none installed"
        raise UnknownApp(f"unknown app {name!r} (installed: {known})")
    if version is not None and app.descriptor.version != version:
        raise UnknownApp(f"app {name!r} version {version!r} is not installed "
                         f"(installed: {app.descriptor.version})")
    return app
