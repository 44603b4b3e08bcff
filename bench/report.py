"""Turn the JSON-lines records of a run into ``bench/RESULTS.md`` (and summaries)."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
from collections import defaultdict
from pathlib import Path
from statistics import mean, median

from bench import records as records_mod

OURS = "microtome"


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _one(records: list[dict], suite: str) -> dict:
    return next((r for r in records if r.get("suite") == suite), {})


def _mb(n: float | None) -> str:
    return "-" if n is None else f"{n / 1e6:,.0f} MB"


def _f(x: float | None, fmt: str = ".0f") -> str:
    return "-" if x is None or x != x else format(x, fmt)


def aggregate(records: list[dict], suite: str, keys: tuple[str, ...]) -> dict[tuple, dict]:
    """Mean over ABBA blocks of each metric, per (keys..., server)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        if r.get("suite") == suite:
            groups[(*(r.get(k) for k in keys), r["server"])].append(r)
    out = {}
    for key, rs in groups.items():
        n = sum(_ok(r) for r in rs)  # per successful request: errors are not throughput
        cpu = sum(r["server_cpu_s"] for r in rs)
        out[key] = {
            "rps": mean(r["rps"] for r in rs),
            "rps_blocks": [round(r["rps"]) for r in rs],
            "p50_ms": mean(r["p50_ms"] for r in rs),
            "p90_ms": mean(r["p90_ms"] for r in rs),
            "p99_ms": mean(r["p99_ms"] for r in rs),
            "errors": sum(r["errors"] for r in rs),
            "requests": n,
            "kb_per_req": sum(r["bytes"] for r in rs) / n / 1e3 if n else None,
            "cpu_per_1000": cpu / n * 1000 if n else None,
            "client_cpu_per_1000": sum(r["client_cpu_s"] for r in rs) / n * 1000 if n else None,
        }
    return out


def _ok(r: dict) -> int:
    """Successful requests of a pass (records older than the "ok" field: all but errors)."""
    return int(r.get("ok", r["requests"] - r["errors"]))


def ratios(agg: dict[tuple, dict]) -> dict[tuple, dict[str, float]]:
    """Our throughput divided by each peer's, per scenario."""
    by_scn: dict[tuple, dict[str, float]] = defaultdict(dict)
    for key, v in agg.items():
        by_scn[key[:-1]][key[-1]] = v["rps"]
    out = {}
    for scn, rps in by_scn.items():
        if OURS in rps:
            out[scn] = {s: rps[OURS] / r for s, r in rps.items() if s != OURS and r > 0}
    return out


def cpu_ratios(agg: dict[tuple, dict]) -> dict[tuple, dict[str, float]]:
    """Each peer's server CPU per tile divided by ours, per scenario."""
    by_scn: dict[tuple, dict[str, float]] = defaultdict(dict)
    for key, v in agg.items():
        if v["cpu_per_1000"]:
            by_scn[key[:-1]][key[-1]] = v["cpu_per_1000"]
    return {scn: {s: c / cpu[OURS] for s, c in cpu.items() if s != OURS}
            for scn, cpu in by_scn.items() if cpu.get(OURS)}


def _servers(agg: dict[tuple, dict]) -> list[str]:
    names = sorted({k[-1] for k in agg}, key=lambda s: (s != OURS, s))
    return names


def tile_tables(records: list[dict]) -> list[str]:
    agg = aggregate(records, "tiles", ("list", "concurrency", "temp"))
    if not agg:
        return ["No tile passes were recorded."]
    rat = ratios(agg)
    peers = [s for s in _servers(agg) if s != OURS]
    lines = ["### Throughput ratio (Microtome tiles/s divided by the peer's, same list, ABBA)", ""]
    if rat:
        lines += ["| list | concurrency | pass | " + " | ".join(f"vs {p}" for p in peers) + " |",
                  "|---|---:|---|" + "---:|" * len(peers)]
        for scn in sorted(rat):
            cells = [f"{rat[scn][p]:.2f}x" if p in rat[scn] else "-" for p in peers]
            lines.append(f"| {scn[0]} | {scn[1]} | {scn[2]} | " + " | ".join(cells) + " |")
    else:
        lines.append("Microtome's tile server did not run, so there are no ratios "
                     "(see 'What ran').")
    cpu = cpu_ratios(agg)
    if cpu:
        lines += ["", "### Server CPU per tile ratio (peer's CPU seconds per 1000 tiles divided "
                  "by Microtome's)", "",
                  "CPU time per tile is less sensitive than throughput to other work on the "
                  "machine, so it is a second, steadier view of the same passes.", "",
                  "| list | concurrency | pass | " + " | ".join(f"{p}" for p in peers) + " |",
                  "|---|---:|---|" + "---:|" * len(peers)]
        for scn in sorted(cpu):
            cells = [f"{cpu[scn][p]:.1f}x" if p in cpu[scn] else "-" for p in peers]
            lines.append(f"| {scn[0]} | {scn[1]} | {scn[2]} | " + " | ".join(cells) + " |")
    lines += ["", "### Every server, every scenario (means over the ABBA blocks)", "",
              "| list | conc. | pass | server | tiles/s (blocks) | p50 ms | p90 ms | p99 ms "
              "| errors | KB/tile | server CPU s /1000 tiles | client CPU s /1000 |",
              "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key in sorted(agg, key=lambda k: (k[0], k[1], k[2], k[3] != OURS, k[3])):
        v = agg[key]
        blocks = "/".join(str(b) for b in v["rps_blocks"])
        lines.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | **{v['rps']:.0f}** ({blocks}) "
            f"| {_f(v['p50_ms'], '.1f')} | {_f(v['p90_ms'], '.1f')} | {_f(v['p99_ms'], '.1f')} "
            f"| {v['errors']} | {_f(v['kb_per_req'], '.1f')} | {_f(v['cpu_per_1000'], '.2f')} "
            f"| {_f(v['client_cpu_per_1000'], '.2f')} |")
    return lines


def extras_tables(records: list[dict]) -> list[str]:
    lines: list[str] = []
    for suite, title in (("iiif-aligned", "IIIF regions aligned on the tile grid"),
                         ("iiif-unaligned", "IIIF regions at arbitrary offsets and sizes"),
                         ("thumbnails", "Thumbnails (48 distinct sizes, 128-1024 px)")):
        agg = aggregate(records, suite, ())
        if not agg:
            continue
        lines += [f"### {title}", "", "| server | req/s | p50 ms | p99 ms | errors | KB/req "
                  "| server CPU s /1000 |", "|---|---:|---:|---:|---:|---:|---:|"]
        for key in sorted(agg, key=lambda k: (k[-1] != OURS, k[-1])):
            v = agg[key]
            lines.append(f"| {key[-1]} | {v['rps']:.1f} | {_f(v['p50_ms'], '.1f')} "
                         f"| {_f(v['p99_ms'], '.1f')} | {v['errors']} "
                         f"| {_f(v['kb_per_req'], '.1f')} | {_f(v['cpu_per_1000'], '.1f')} |")
        lines.append("")
    return lines or ["Not run in this mode."]


def convert_table(records: list[dict]) -> list[str]:
    rows = [r for r in records if r.get("suite") == "convert"]
    if not rows:
        return ["No conversion was timed in this run."]
    lines = ["| tool | exit | wall s | MP/s | peak RSS (largest process) | peak RSS (tree) "
             "| CPU s | output |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['tool']} (`{r.get('command', '')}`) | {r['exit']} | {r['wall_s']:.1f} "
            f"| {r['megapixels'] / r['wall_s'] if r['exit'] == 0 else float('nan'):.1f} "
            f"| {_mb(r['peak_rss_bytes'])} "
            f"| {_mb(r['peak_tree_rss_bytes'])} | {r['cpu_s']:.0f} "
            f"| {_mb(r.get('output_bytes'))} |")
    return lines


def same_pixels_lines(records: list[dict]) -> list[str]:
    sp = _one(records, "same-pixels")
    if not sp.get("servers"):
        return ["Not checked (the openslide reference server did not run)."]
    lines = [f"Before the passes, {sp['tiles']} sample tiles of the uniform list were fetched "
             "from every server and decoded; compared with the openslide server's tiles:", "",
             "| server | same tile size | mean abs. difference (0-255) | worst tile "
             "| JPEG chroma | mean bytes |",
             "|---|---:|---:|---:|---|---:|"]
    jpeg = sp.get("jpeg", {})
    for name in jpeg or sp["servers"]:
        v = sp["servers"].get(name, {})
        j = jpeg.get(name, {})
        shape = f"{v['same_shape']}/{sp['tiles']}" if v else "reference"
        lines.append(f"| {name} | {shape} "
                     f"| {v.get('mean_abs_diff', '-')} | {v.get('max_tile_mean_abs_diff', '-')} "
                     f"| {j.get('chroma', '-')} | {j.get('mean_bytes', '-')} |")
    lines += ["", "Small differences are JPEG generations and resampling filters; a wrong level "
              "or offset would show as tens of grey levels. All servers encode at quality 75; "
              "where chroma subsampling differs (4:4:4 keeps full colour resolution and costs "
              "bytes), bytes per tile differ for the same quality setting."]
    return lines


def copied_line(records: list[dict]) -> str:
    """Where this run's conversion copied source tiles, as measured."""
    conv = next((r for r in records if r.get("suite") == "convert"
                 and r.get("tool") == "microtome"), None)
    if conv is None or "copied_chunks" not in conv:
        return ("This run did not record how many tiles its conversion copied (a reused "
                "conversion, or a record from before that was counted).")
    c, n = conv["copied_chunks"], conv["level0_chunks"]
    return (f"In this run's conversion {c:,} of the {n:,} full-resolution chunks were the "
            f"source's JPEG tiles copied as they are ({c / n:.0%}); every lower level was "
            "encoded once at conversion.")


def same_resources(srv: dict, cfg: dict) -> list[str]:
    """The process counts of this record's servers, checked rather than asserted."""
    workers = cfg.get("ours_workers", 2)
    setups = {k: v for k, v in srv.get("servers", {}).items() if k != OURS}
    unequal = [k for k, v in setups.items()
               if not re.search(rf"\b{workers} (?:\w+ )?process", v)]
    if unequal:
        return [f"- **Not the same resources in this record**: {', '.join(unequal)} ran with "
                f"fewer processes than Microtome's {workers} tile workers (see 'What ran'; "
                "the record predates equal process counts) — re-run `make bench`."]
    return [f"- Same resources: every server runs {workers} processes, as many as Microtome "
            "has tile workers (the Python peers on one port, each with its own thread pool "
            "and slide handle; IIPImage that many FastCGI processes)."]


def losses(records: list[dict]) -> list[str]:
    """Every comparison where a peer beat us on throughput, stated plainly."""
    out = []
    agg = aggregate(records, "tiles", ("list", "concurrency", "temp"))
    for scn, peers in sorted(ratios(agg).items()):
        for peer, r in sorted(peers.items()):
            if r < 1:
                out.append(f"- tiles `{scn[0]}` c={scn[1]} {scn[2]}: {peer} is {1 / r:.2f}x "
                           "faster than Microtome.")
    for scn, peers in sorted(cpu_ratios(agg).items()):
        for peer, r in sorted(peers.items()):
            if r < 1:
                out.append(f"- tiles `{scn[0]}` c={scn[1]} {scn[2]}: {peer} used {1 / r:.2f}x "
                           "less server CPU per tile than Microtome.")
    for suite in ("iiif-aligned", "iiif-unaligned", "thumbnails"):
        for peers in ratios(aggregate(records, suite, ())).values():
            for peer, r in sorted(peers.items()):
                if r < 1:
                    out.append(f"- {suite}: {peer} is {1 / r:.2f}x faster than Microtome.")
    conv = {r["tool"]: r for r in records if r.get("suite") == "convert" and r["exit"] == 0}
    if "vips" in conv and "microtome" in conv:
        if conv["microtome"]["wall_s"] > conv["vips"]["wall_s"]:
            out.append(f"- conversion: vips took {conv['vips']['wall_s']:.0f} s, Microtome "
                       f"{conv['microtome']['wall_s']:.0f} s.")
        if conv["microtome"]["peak_rss_bytes"] > conv["vips"]["peak_rss_bytes"]:
            out.append("- conversion peak RSS: Microtome used more memory than vips "
                       f"({_mb(conv['microtome']['peak_rss_bytes'])} vs "
                       f"{_mb(conv['vips']['peak_rss_bytes'])}).")
    return out or ["- Nowhere in this run."]


def goals(records: list[dict]) -> list[str]:
    agg = aggregate(records, "tiles", ("list", "concurrency", "temp"))
    rat = ratios(agg)
    out = []
    conv = {r["tool"]: r for r in records if r.get("suite") == "convert" and r["exit"] == 0}
    if "vips" in conv and "microtome" in conv:
        ours, vips = conv["microtome"], conv["vips"]
        ok = ours["wall_s"] < vips["wall_s"] and ours["peak_rss_bytes"] <= 1 << 30
        out.append(f"- Conversion faster than vips at <= 1 GB peak RSS: "
                   f"{'met' if ok else 'not met'} ({ours['wall_s']:.0f} s vs "
                   f"{vips['wall_s']:.0f} s, {_mb(ours['peak_rss_bytes'])}).")
    if not rat:
        return [*out, "- Tile goals not assessable: Microtome's tile server did not run."]
    for peer, goal in (("openslide", 6.0), ("iipimage", 2.0)):
        vals = [r[peer] for r in rat.values() if peer in r]
        if vals:
            met = sum(v >= goal for v in vals)
            out.append(f"- >= {goal:g}x {peer}: met in {met} of {len(vals)} scenarios "
                       f"(range {min(vals):.2f}x - {max(vals):.2f}x).")
    for temp in ("cold", "warm"):
        p99_ours = [v["p99_ms"] for k, v in agg.items()
                    if k[1] == 8 and k[2] == temp and k[3] == OURS]
        p99_iip = [v["p99_ms"] for k, v in agg.items()
                   if k[1] == 8 and k[2] == temp and k[3] == "iipimage"]
        if p99_ours and p99_iip:
            a, b = mean(p99_ours), mean(p99_iip)
            out.append(f"- p99 at concurrency 8, {temp}: Microtome {a:.1f} ms vs "
                       f"IIPImage {b:.1f} ms ({'no worse' if a <= b else 'worse'}).")
    return out


def _load(v: list[float] | None) -> str:
    return "/".join(f"{x:.1f}" for x in v) if v else "?"


def machine_lines(m: dict, end: dict) -> list[str]:
    v = m.get("versions", {})
    return [
        f"- CPU: {m.get('cpu_model')} — {m.get('cores')} cores, {m.get('memory_gb')} GB RAM, "
        f"Linux {m.get('kernel')}",
        f"- Python {m.get('python')}; " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"- Load average (1/5/15 min) at start {_load(m.get('loadavg'))}, at end "
        f"{_load(end.get('loadavg'))}; "
        f"git commit {m.get('git_commit')}; run took {end.get('elapsed_s', '?')} s.",
    ]


def provenance(doc: dict) -> str:
    """Where and when a record was measured, for the line under its section title."""
    load = doc.get("load") or {}
    m = doc.get("machine") or {}
    where = f"; {m['cores']} cores ({m.get('cpu_model', '?')})" if m.get("cores") else ""
    imported = (f" Imported unchanged from the earlier raw file {doc['imported_from']}."
                if doc.get("imported_from") else "")
    return (f"*Measured {doc.get('date', '?')} at commit {doc.get('commit', '?')} with "
            f"`{doc.get('command', '?')}`{' (quick)' if doc.get('quick') else ''}{where}; "
            f"load average {_load(load.get('start'))} at start, {_load(load.get('end'))} "
            f"at end.{imported}*")


def suite_section(name: str, doc: dict | None, failures: dict[str, str]) -> list[str]:
    """One suite's section from its record: its module's render(figures) with the
    provenance line under the title; a suite with no record says how to make one."""
    from bench.run import STANDALONE_SUITES

    short = name.removeprefix("bench.")
    failed = failures.get(name)
    if doc is None:
        how = "" if name in STANDALONE_SUITES else " (or `make bench`)"
        lines = [f"## {short}", "", f"No record yet: run `python -m {name}`{how}."]
    else:
        mod = importlib.import_module(name)
        body = mod.render(doc.get("figures", [])).strip("\n").splitlines() or [f"## {short}"]
        title, rest = body[0], body[1:]
        if not title.startswith("## "):
            title, rest = f"## {short}", body
        lines = [title, "", provenance(doc), *rest]
    if failed:
        lines += ["", f"**The last full run could not measure this suite** ({failed}); "
                  "the figures above are from the date they state."]
    return lines


def suite_names() -> list[str]:
    """Every suite with a section in RESULTS.md, in order."""
    from bench.run import EXTRA_SUITES, STANDALONE_SUITES

    return [*EXTRA_SUITES, *STANDALONE_SUITES]


def extra_sections(failures: dict[str, str], directory: Path | None = None) -> list[str]:
    lines: list[str] = []
    for name in suite_names():
        if importlib.util.find_spec(name) is None:
            continue
        doc = records_mod.load(name.removeprefix("bench."), directory)
        lines += ["", *suite_section(name, doc, failures)]
    return lines


def pass_lines(records: list[dict], cfg: dict) -> list[str]:
    """How a tile pass is bounded, the level mix every server got, stuck passes."""
    lists = _one(records, "lists")
    n = lists.get("pass_requests")
    common = (f"`cold` = the first request of each tile since the server process started "
              f"(servers restart before every cold pass), `warm` = the same tiles again right "
              f"after. Concurrency {cfg.get('concurrencies')}, keep-alive connections, "
              f"aiohttp client (uvloop) in its own process. Server CPU = user+system seconds "
              f"of the server's whole process tree from /proc, per 1000 successful tiles; "
              f"errors never count as throughput.")
    if n is None:  # records from before fixed-size passes
        return [f"- Each pass is bounded to {cfg.get('pass_seconds')} s (no new request after "
                f"that); {common}"]
    mix = "; ".join(f"`{name}` " + ", ".join(f"L{lv}: {c}" for lv, c in levels.items())
                    for name, levels in lists.get("levels", {}).items())
    out = [f"- Each tile pass is the first {n} tiles of its list, for every server: the same "
           f"requests, so the same mix of Deep Zoom levels ({mix}). A "
           f"{cfg.get('pass_cap_s')} s safety cap only stops a stuck pass. {common}"]
    stuck = [r for r in records if r.get("suite") == "tiles" and r.get("requests", n) < n]
    for r in stuck:
        out.append(f"- **Stopped by the cap**: {r['server']} {r['list']} c={r['concurrency']} "
                   f"{r['temp']} block {r['block']} after {r['requests']} of {n} tiles.")
    return out


def render(records: list[dict], doc: dict | None = None,
           directory: Path | None = None) -> str:
    """RESULTS.md: the tile run's ``records`` (with its record document ``doc``), then
    every other suite's section from its own record in ``directory``."""
    m = _one(records, "machine")
    end = _one(records, "end")
    srv = _one(records, "servers")
    sl = _one(records, "slide")
    cfg = m.get("config", {})
    sizes = {k: v for k, v in _one(records, "lists").items() if k in ("panning", "uniform")}
    sizes = sizes or cfg.get("list_sizes", {})
    status = end.get("status", srv.get("status", {}))
    failures = {r["module"]: r["status"] for r in records
                if r.get("suite") == "extra" and r.get("status") != "ok"}
    measured = [provenance(doc), ""] if doc else []
    lines = [
        "# Microtome benchmark results",
        "",
        "Generated by `make bench` (`python -m bench`; `python -m bench --report-only` "
        "re-renders) from the raw records in `bench/records/` — nothing here is written by "
        "hand. Each section says when, at which commit and under which load its figures "
        "were measured; a suite not run in the last full run keeps its last record and "
        "date.",
        "",
        "## Tiles, IIIF and conversion: machine",
        "",
        *measured,
        *machine_lines(m, end),
        "",
        "**Noise warning.** This machine has 2 cores, and other agents were building and testing "
        "on it during the run, while the load generator shares the same cores as the server "
        "under test. Absolute tiles/s are therefore noisy and low; the ratios are the figures "
        "to read, because servers were interleaved in ABBA blocks (A B C D D C B A) over the "
        "same request list, so load drifts hit every server alike. Per-block throughputs are "
        "shown so the spread is visible.",
        "",
        "## What ran",
        "",
        f"- Slide: {sl.get('width')} x {sl.get('height')} px generated from real tissue "
        f"(`CMU-1-Small-Region.svs` level 0 mirrored), Aperio-style BigTIFF, 256 px JPEG tiles "
        f"Q75 4:2:0, x4 levels, MPP 0.499; {_mb(sl.get('bytes'))}.",
        *(f"- {name}: {desc}" for name, desc in srv.get("servers", {}).items()),
        *(f"- **{name} not run**: {why}" for name, why in status.items() if why),
        f"- Request lists: `panning` = a seeded viewer (1600x1000 viewport) wandering and "
        f"zooming over the top three Deep Zoom levels, requesting only tiles not yet seen, "
        f"nearest the viewport centre first ({sizes.get('panning')} tiles); "
        f"`uniform` = distinct tiles drawn uniformly from every tile of every level "
        f"({sizes.get('uniform')} tiles). Deep Zoom levels smaller than one "
        f"tile (a handful of 1-tile levels) are left out: large_image has no tile there and "
        f"IIPImage answers them with its smallest level.",
        *pass_lines(records, cfg),
        "",
        "## Why the comparison is fair",
        "",
        "- Same slide for everyone: the Python peers read the generated SVS, IIPImage reads "
        "`vips tiffsave --tile --pyramid` of it (x2 levels, JPEG Q75), Microtome reads its "
        "OME-Zarr conversion of it (`--quality 75`). JPEG generations between the "
        "scanner-style source and the bytes sent: the Python peers one (per request); "
        "IIPImage two (vips, then iipsrv per tile); Microtome none at full resolution where "
        "the converter copies the source's own JPEG tiles (it does when they line up with "
        "its chunk grid and tables) and one on the lower levels (at conversion). "
        f"{copied_line(records)} Pixels and bytes are compared below.",
        "- Same tiles: one seeded list, mapped onto each server's URL scheme (Deep Zoom for all "
        "four); same tile size (256, overlap 0) and same JPEG quality (75).",
        "- Same conditions: loopback, same client, same concurrency, same requests, ABBA order, "
        "page cache warmed for every input file before the first pass.",
        "- Each server runs as its authors intend: caches on where the server has them "
        "(large_image's tile cache, IIPImage's tile cache, Microtome's LRU and stored-chunk "
        "pass-through); the openslide server has none, as in openslide-python's example.",
        *same_resources(srv, cfg),
        "- Differences that remain: Microtome did its JPEG work at conversion time, the peers "
        "do it per request — that is the design being measured, and conversion cost is "
        "reported separately.",
        "",
        "### Same pixels",
        "",
        *same_pixels_lines(records),
        "",
        "## Tiles",
        "",
        *tile_tables(records),
        "",
        "### Goals from the issues",
        "",
        *goals(records),
        "",
        "### Where Microtome loses in this run",
        "",
        *losses(records),
        "",
        "## IIIF regions and thumbnails (concurrency 8 and 4, ABBA)",
        "",
        *extras_tables(records),
        "",
        "## Conversion (same SVS in, same disk)",
        "",
        *convert_table(records),
        "",
        *extra_sections(failures, directory),
        "",
    ]
    return "\n".join(lines)


def write_results(directory: Path | None = None, out: Path | None = None) -> Path:
    """Regenerate RESULTS.md whole from every record in ``directory``."""
    doc = records_mod.load("tiles", directory) or {}
    text = render(doc.get("figures", []), doc, directory)
    path = out or Path(__file__).resolve().parent / "RESULTS.md"
    path.write_text(text)
    return path


def spread(values: list[float]) -> float:
    """Relative spread of repeated measurements: (max - min) / median."""
    m = median(values) if values else 0.0
    return (max(values) - min(values)) / m if len(values) > 1 and m > 0 else 0.0


def quick_summary(records: list[dict]) -> dict[str, float]:
    """Flat metrics for the regression guard, per scenario (list/concurrency/temp):
    the median over repeats of our throughput ratio to each peer (pass k of ours
    against pass k of the peer) and of our CPU per 1000 successful tiles, their
    spread between repeats (``noise/...``), our error rate, and the pixel check."""
    passes: dict[tuple, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if r.get("suite") == "tiles":
            passes[(r["list"], r["concurrency"], r["temp"])][r["server"]].append(r)
    out: dict[str, float] = {}
    for (lst, conc, temp), by_server in passes.items():
        ours = sorted(by_server.get(OURS, []), key=lambda r: r["block"])
        if not ours:
            continue
        scn = f"{lst}/c{conc}/{temp}"
        requests = sum(r["requests"] for r in ours)
        out[f"error_rate/{scn}"] = round(sum(r["errors"] for r in ours) / requests, 4) \
            if requests else 1.0
        rps = [_ok(r) / r["elapsed_s"] if r["elapsed_s"] else 0.0 for r in ours]
        out[f"rps/{scn}"] = round(median(rps), 1)
        cpu = [r["server_cpu_s"] / _ok(r) * 1000 for r in ours if _ok(r)]
        if cpu:
            out[f"cpu_s_per_1000/{scn}"] = round(median(cpu), 3)
            out[f"noise/cpu_s_per_1000/{scn}"] = round(spread(cpu), 3)
        for peer, runs in by_server.items():
            if peer == OURS:
                continue
            runs = sorted(runs, key=lambda r: r["block"])
            peer_rps = [_ok(r) / r["elapsed_s"] if r["elapsed_s"] else 0.0 for r in runs]
            ratio = [a / b for a, b in zip(rps, peer_rps, strict=False) if b > 0]
            if ratio:
                out[f"ratio_vs_{peer}/{scn}"] = round(median(ratio), 3)
                out[f"noise/ratio_vs_{peer}/{scn}"] = round(spread(ratio), 3)
    sp = _one(records, "same-pixels")
    mine = sp.get("servers", {}).get(OURS)
    if mine is not None:
        out["pixels/shape_mismatches"] = float(sp["tiles"] - mine["same_shape"])
        out["pixels/mean_abs_diff"] = float(mine["mean_abs_diff"] if mine["mean_abs_diff"]
                                            is not None else 255.0)
        out["pixels/max_tile_mean_abs_diff"] = float(
            mine["max_tile_mean_abs_diff"] if mine["max_tile_mean_abs_diff"] is not None
            else 255.0)
    return out
