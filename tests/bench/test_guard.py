"""The quick benchmark's regression guard, tested itself: errors and wrong pixels
fail it, errors never count as throughput, and its threshold stays above the
noise it measures between repeats."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from aiohttp import web
from aiohttp.test_utils import TestServer

from bench import guard, report
from bench.load import replay
from bench.run import same_pixels


def _pass(server: str, lst: str, temp: str, block: int, rps: float, cpu_per_tile: float,
          n: int = 6000, errors: int = 0) -> dict[str, Any]:
    ok = n - errors
    elapsed = ok / rps
    return {"suite": "tiles", "server": server, "list": lst, "concurrency": 32, "temp": temp,
            "block": block, "requests": n, "ok": ok, "errors": errors, "elapsed_s": elapsed,
            "rps": rps, "server_cpu_s": cpu_per_tile * ok, "bytes": ok * 10_000,
            "p50_ms": 3.0, "p90_ms": 6.0, "p99_ms": 12.0, "client_cpu_s": 1.0}


def _pixels(changed: float = 0.0) -> dict[str, Any]:
    """A same-pixels record made by the real comparison over decoded-looking tiles."""
    rng = np.random.default_rng(7)
    ref = [rng.integers(0, 256, (256, 256, 3), dtype=np.uint8) for _ in range(8)]
    ours = [np.clip(t.astype(np.int16) + rng.integers(-1, 2, t.shape), 0, 255).astype(np.uint8)
            for t in ref]
    if changed:
        ours[3] = np.clip(ours[3].astype(np.int16) + int(changed), 0, 255).astype(np.uint8)
    tiles = [(0, 0, 0)] * 8
    return {"suite": "same-pixels", **same_pixels({"openslide": ref, "microtome": ours},
                                                  tiles)}


def _run(ours_rps: list[float], peer_rps: list[float], cpu: list[float],
         errors: int = 0, pixel_change: float = 0.0) -> list[dict[str, Any]]:
    """Records of a quick run: two lists x cold/warm, blocks A B B A A B B A."""
    records: list[dict[str, Any]] = [_pixels(pixel_change)]
    for lst in ("panning", "uniform"):
        for temp in ("cold", "warm"):
            order = ["microtome", "openslide", "openslide", "microtome"] * 2
            k = {"microtome": 0, "openslide": 0}
            for block, server in enumerate(order):
                i = k[server]
                k[server] += 1
                if server == "microtome":
                    records.append(_pass(server, lst, temp, block, ours_rps[i], cpu[i],
                                         errors=errors if i == 0 else 0))
                else:
                    records.append(_pass(server, lst, temp, block, peer_rps[i], 1e-3))
    return records


STEADY = dict(ours_rps=[5000, 5100, 4950, 5050], peer_rps=[400, 405, 398, 402],
              cpu=[1.6e-4, 1.62e-4, 1.59e-4, 1.61e-4])


def test_a_clean_run_passes_and_reports_its_noise() -> None:
    baseline = report.quick_summary(_run(**STEADY))
    current = report.quick_summary(_run(**STEADY))
    lines, failed = guard.compare(current, baseline)
    assert not failed, lines
    assert current["ratio_vs_openslide/panning/c32/cold"] > 12
    assert 0 < guard.noise_of(current, "ratio_vs_") < 0.05
    assert any("noise between repeats" in line for line in lines)


def test_errors_fail_the_guard_and_are_not_throughput() -> None:
    baseline = report.quick_summary(_run(**STEADY))
    current = report.quick_summary(_run(**STEADY, errors=60))
    assert current["error_rate/panning/c32/cold"] > 0
    lines, failed = guard.compare(current, baseline)
    assert failed and any("errors" in line for line in lines), lines


def test_a_pixel_change_fails_the_guard() -> None:
    baseline = report.quick_summary(_run(**STEADY))
    assert report.quick_summary(_run(**STEADY))["pixels/mean_abs_diff"] < guard.PIXEL_MEAN_MAX
    current = report.quick_summary(_run(**STEADY, pixel_change=40))
    lines, failed = guard.compare(current, baseline)
    assert failed and any("differs from the reference" in line for line in lines), lines
    # No pixel check at all is a failure too, not a pass.
    unchecked = {k: v for k, v in current.items() if not k.startswith("pixels/")}
    assert guard.compare(unchecked, baseline)[1]


def test_threshold_sits_above_the_noise() -> None:
    baseline = report.quick_summary(_run(**STEADY))
    # Repeats spread by ~16%: a 25% drop is within twice the noise, not a regression...
    noisy = dict(ours_rps=[3500, 4100, 3800, 3700], peer_rps=[400, 400, 400, 400],
                 cpu=[1.6e-4] * 4)
    current = report.quick_summary(_run(**noisy))
    assert 0.12 < guard.noise_of(current, "ratio_vs_") < 0.2
    lines, failed = guard.compare(current, baseline)
    assert not failed, lines
    # ...while the same drop with quiet repeats is one.
    quiet = dict(ours_rps=[3750, 3760, 3740, 3755], peer_rps=[400] * 4, cpu=[1.6e-4] * 4)
    assert guard.compare(report.quick_summary(_run(**quiet)), baseline)[1]
    # And a run noisier than any useful threshold cannot pass.
    wild = dict(ours_rps=[1000, 5000, 2000, 9000], peer_rps=[400] * 4, cpu=[1.6e-4] * 4)
    lines, failed = guard.compare(report.quick_summary(_run(**wild)), baseline)
    assert failed and any("too noisy" in line for line in lines), lines


def test_a_broken_run_is_not_recorded_as_baseline(tmp_path: Any) -> None:
    path = tmp_path / "baseline.json"
    assert guard.check(report.quick_summary(_run(**STEADY, errors=5)), path, update=True) == 1
    assert not path.exists()
    assert guard.check(report.quick_summary(_run(**STEADY)), path, update=True) == 0


async def test_load_generator_counts_errors_apart() -> None:
    """A real server answering 1 in 5 requests with 500: throughput counts the 200s."""
    async def handler(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        return web.Response(status=500 if n % 5 == 0 else 200, body=b"x" * 100)

    app = web.Application()
    app.router.add_get("/t/{n}", handler)
    async with TestServer(app) as server:
        base = str(server.make_url("")).rstrip("/")
        res = await replay(base, [f"/t/{n}" for n in range(200)], concurrency=4,
                           max_seconds=30)
    assert (res["requests"], res["ok"], res["errors"]) == (200, 160, 40)
    assert abs(res["rps"] - 160 / res["elapsed_s"]) < 1e-6
    rec = {"suite": "tiles", "server": "microtome", "list": "panning", "concurrency": 4,
           "temp": "cold", "block": 0, "server_cpu_s": 0.1, **res}
    summary = report.quick_summary([copy.deepcopy(rec), _pixels()])
    assert summary["error_rate/panning/c4/cold"] == 0.2
    assert guard.absolute_problems(summary)
