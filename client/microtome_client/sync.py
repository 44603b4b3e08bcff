"""`Client`: the synchronous face of `AsyncClient`, without a second implementation.

A private event loop runs in a daemon thread; every call on the client or on
the records it returns runs the async method there and waits for it.  Async
iterators become ordinary iterators (pulling one item at a time), awaitables
become values, and records come back wrapped the same way.  Ctrl-C while
waiting cancels the running call.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import AsyncIterable, Coroutine, Iterator
from typing import Any

from .annotations import AnnotationQuery
from .core import AsyncClient
from .models import Record


class _Loop:
    """An event loop in a daemon thread, and a blocking `run` for coroutines."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                       name="microtome-client")
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        if not self.thread.is_alive():
            coro.close()
            raise RuntimeError("the client is closed")
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result()
        except BaseException:
            fut.cancel()  # Ctrl-C or another interruption: stop the work too
            raise

    def iterate(self, aiterable: AsyncIterable[Any]) -> Iterator[Any]:
        it = aiterable.__aiter__()
        try:
            while True:
                try:
                    item = self.run(_await(it.__anext__()))
                except StopAsyncIteration:
                    return
                yield wrap(item, self)
        finally:
            closer = getattr(it, "aclose", None)
            if closer is not None and self.thread.is_alive():
                self.run(closer())

    def close(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


def wrap(value: Any, loop: _Loop) -> Any:
    """The synchronous view of what an async method returned."""
    if inspect.isawaitable(value):
        return wrap(loop.run(_await(value)), loop)
    if isinstance(value, (Record, AnnotationQuery)):
        return Sync(value, loop)
    if isinstance(value, AsyncIterable):
        return loop.iterate(value)
    if isinstance(value, list):
        return [wrap(v, loop) for v in value]
    if hasattr(value, "image") and isinstance(getattr(value, "image", None), Record):
        value.image = Sync(value.image, loop)  # UploadResult: keep the dataclass
    return value


def _unwrap(value: Any) -> Any:
    """Arguments go to async methods as the records they wrap (lists too)."""
    if isinstance(value, Sync):
        return value._target
    if isinstance(value, (list, tuple)) and any(isinstance(v, Sync) for v in value):
        return type(value)(_unwrap(v) for v in value)
    return value


async def _await(value: Any) -> Any:
    return await value


class Sync:
    """A record, query or client whose async methods are called synchronously."""

    __slots__ = ("_loop", "_target")

    def __init__(self, target: Any, loop: _Loop) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_loop", loop)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if callable(attr) and not isinstance(attr, type):
            @functools.wraps(attr)
            def call(*args: Any, **kwargs: Any) -> Any:
                args = tuple(_unwrap(a) for a in args)
                kwargs = {k: _unwrap(v) for k, v in kwargs.items()}
                return wrap(attr(*args, **kwargs), self._loop)

            return call
        return wrap(attr, self._loop)

    def __iter__(self) -> Iterator[Any]:
        if isinstance(self._target, AsyncIterable):
            return self._loop.iterate(self._target)
        raise TypeError(f"{type(self._target).__name__} is not iterable")

    def unwrap(self) -> Any:
        """The underlying async object (its fields and async methods)."""
        return self._target

    def __dir__(self) -> list[str]:
        return sorted(set(dir(self._target)) | {"unwrap"})

    def __repr__(self) -> str:
        return repr(self._target)

    def __eq__(self, other: object) -> bool:
        return bool(self._target == (other._target if isinstance(other, Sync) else other))

    def __hash__(self) -> int:
        return id(self._target)


class Client(Sync):
    """Synchronous client: ``Client(url, api_key=...)``, same surface as `AsyncClient`.

    Use as a context manager or call ``close()`` when done.
    """

    __slots__ = ()

    def __init__(self, url: str, api_key: str | None = None, **kwargs: Any) -> None:
        loop = _Loop()
        try:
            target = AsyncClient(url, api_key, **kwargs)
        except BaseException:
            loop.close()
            raise
        super().__init__(target, loop)

    def __enter__(self) -> Client:
        try:
            self._loop.run(self._target._ensure_login())
        except BaseException:
            self.close()  # a failed login must not leave the loop thread behind
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.thread.is_alive():
            self._loop.run(self._target.aclose())
        self._loop.close()
