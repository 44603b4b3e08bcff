"""Tile server metrics: plain counters on the hot path, Prometheus text by prometheus_client.

The counters are bumped from the event-loop thread only, so they are plain
integers (a labelled prometheus_client metric takes a lock per update); at
scrape time a custom collector hands them to prometheus_client, which owns
the exposition format.

Per process: with ``--workers N`` each worker reports its own numbers
(scrape each, or sum them; the ``pid`` label tells them apart).
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import wraps
from time import perf_counter

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from microtome.core.http import status_for
from microtome.pyramid.errors import MicrotomeError

#: Latency histogram upper bounds, seconds.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

_COUNTERS = {
    "cache_hits": ("microtome_tile_cache_hits", "Tiles answered from the tile cache."),
    "cache_misses": ("microtome_tile_cache_misses", "Tiles produced on a cache miss."),
    "passthrough": ("microtome_tile_passthrough", "Stored chunks sent without re-encoding."),
    "rendered": ("microtome_tile_rendered", "Tiles decoded, resampled and encoded."),
    "not_modified": ("microtome_tile_not_modified", "304 answers to conditional requests."),
}

_GAUGE_HELP = {
    "microtome_tile_cache_bytes": "Bytes of encoded tiles held in the tile cache.",
    "microtome_tile_cache_entries": "Encoded tiles held in the tile cache.",
    "microtome_open_images": "Images held open (metadata read, shard indexes cached).",
}


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

    def families(self, gauges: dict[str, float]) -> Iterator[Metric]:
        """The current values as Prometheus metric families."""
        pid = str(os.getpid())
        requests = CounterMetricFamily("microtome_tile_requests",
                                       "Tile server requests by route and status.",
                                       labels=["route", "status", "pid"])
        for (route, status), n in sorted(self.requests.items()):
            requests.add_metric([route, str(status), pid], n)
        yield requests
        latency = HistogramMetricFamily("microtome_tile_request_seconds", "Request latency.",
                                        labels=["route", "pid"])
        for route in sorted(self.latency_count):
            cum, buckets = 0, []
            for b in BUCKETS:
                cum += self.latency_buckets[(route, b)]
                buckets.append((str(b), cum))
            buckets.append(("+Inf", self.latency_count[route]))
            latency.add_metric([route, pid], buckets, self.latency_sum[route])
        yield latency
        for attr, (name, text) in _COUNTERS.items():
            counter = CounterMetricFamily(name, text, labels=["pid"])
            counter.add_metric([pid], getattr(self, attr))
            yield counter
        for name, value in gauges.items():
            gauge = GaugeMetricFamily(name, _GAUGE_HELP.get(name, name), labels=["pid"])
            gauge.add_metric([pid], value)
            yield gauge

    def render(self, gauges: dict[str, float]) -> str:
        """Prometheus text exposition of these metrics and `gauges`."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self, gauges))
        return generate_latest(registry).decode()


class _Collector:
    def __init__(self, metrics: Metrics, gauges: dict[str, float]) -> None:
        self.metrics, self.gauges = metrics, gauges

    def collect(self) -> Iterator[Metric]:
        return self.metrics.families(self.gauges)


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
