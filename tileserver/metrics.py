"""Prometheus text-format metrics, kept in plain counters (event-loop thread only).

Per process: with ``--workers N`` each worker reports its own numbers
(scrape each, or sum them; the ``pid`` label tells them apart).
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import wraps
from time import perf_counter

from aiohttp import web

from core.http import status_for
from pyramid.errors import MicrotomeError

#: Latency histogram upper bounds, seconds.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class Metrics:
    requests: Counter[tuple[str, int]] = field(default_factory=Counter)
    latency_buckets: Counter[tuple[str, float]] = field(default_factory=Counter)
    latency_sum: dict[str, float] = field(default_factory=dict)
    latency_count: Counter[str] = field(default_factory=Counter)
    cache_hits: int = 0
    cache_misses: int = 0
    passthrough: int = 0
    rendered: int = 0
    not_modified: int = 0

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests[(route, status)] += 1
        self.latency_sum[route] = self.latency_sum.get(route, 0.0) + seconds
        self.latency_count[route] += 1
        for b in BUCKETS:
            if seconds <= b:
                self.latency_buckets[(route, b)] += 1
                break

    def render(self, extra: dict[str, float]) -> str:
        pid = os.getpid()
        lines = ["# HELP microtome_tile_requests_total Tile server requests by route and status.",
                 "# TYPE microtome_tile_requests_total counter"]
        for (route, status), n in sorted(self.requests.items()):
            lines.append(f'microtome_tile_requests_total{{route="{route}",status="{status}",'
                         f'pid="{pid}"}} {n}')
        lines += ["# HELP microtome_tile_request_seconds Request latency.",
                  "# TYPE microtome_tile_request_seconds histogram"]
        for route in sorted(self.latency_count):
            cum = 0
            for b in BUCKETS:
                cum += self.latency_buckets[(route, b)]
                lines.append(f'microtome_tile_request_seconds_bucket{{route="{route}",le="{b}",'
                             f'pid="{pid}"}} {cum}')
            lines.append(f'microtome_tile_request_seconds_bucket{{route="{route}",le="+Inf",'
                         f'pid="{pid}"}} {self.latency_count[route]}')
            lines.append(f'microtome_tile_request_seconds_sum{{route="{route}",pid="{pid}"}} '
                         f'{self.latency_sum[route]:.6f}')
            lines.append(f'microtome_tile_request_seconds_count{{route="{route}",pid="{pid}"}} '
                         f'{self.latency_count[route]}')
        counters = {
            "microtome_tile_cache_hits_total": self.cache_hits,
            "microtome_tile_cache_misses_total": self.cache_misses,
            "microtome_tile_passthrough_total": self.passthrough,
            "microtome_tile_rendered_total": self.rendered,
            "microtome_tile_not_modified_total": self.not_modified,
        }
        for name, value in counters.items():
            lines += [f"# TYPE {name} counter", f'{name}{{pid="{pid}"}} {value}']
        for gauge, gvalue in extra.items():
            lines += [f"# TYPE {gauge} gauge", f'{gauge}{{pid="{pid}"}} {gvalue}']
        return "\n".join(lines) + "\n"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
METRICS = web.AppKey("tile_metrics", Metrics)


def instrumented(route: str) -> Callable[[Handler], Handler]:
    """Count requests and latency of a handler, errors included."""

    def wrap(handler: Handler) -> Handler:
        @wraps(handler)
        async def inner(request: web.Request) -> web.StreamResponse:
            t0 = perf_counter()
            status = 500
            try:
                resp = await handler(request)
                status = resp.status
                return resp
            except MicrotomeError as e:
                status = status_for(e)
                raise
            except web.HTTPException as e:
                status = e.status
                raise
            except asyncio.CancelledError:
                status = 499  # client went away (nginx's convention)
                raise
            finally:
                request.app[METRICS].observe(route, status, perf_counter() - t0)

        return inner

    return wrap
