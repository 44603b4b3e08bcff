"""Undo and redo in the viewer (issue 14, item 3), in Debian chromium.

A 20-step mixed sequence of edits made with the mouse and keyboard (create
with five tools, move, reshape, term change, delete; seeded rectangles,
ellipses and polygons carrying `data`), then Ctrl+Z twenty times: the server
holds exactly the starting annotations again (kind, shape, terms, data,
geometry); then Ctrl+Shift+Z / Ctrl+Y twenty times: exactly the state after
the sequence, although every deleted annotation came back under a new id.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.frontend.browser import (
    ADMIN,
    ConsoleLog,
    LiveServer,
    admin_project_slide,
    api_call,
    screenshot,
    ui_login,
    wait_tiles,
)

HISTORY = "window.microtome.edits.history"


def _state(context: Any, csrf: str, image_id: int) -> list[str]:
    """Every annotation of the image as the server holds it, without ids/dates."""
    ids = [f["id"] for f in api_call(
        context, "GET", f"/api/images/{image_id}/annotations?bbox=0,0,100000,100000"
        "&lod=features&precision=-1", csrf)["features"]]
    out = []
    for i in ids:
        p = api_call(context, "GET", f"/api/annotations/{i}", csrf)
        g = p["geometry"]

        def rnd(c: Any) -> Any:
            return round(c, 3) if isinstance(c, float | int) else [rnd(x) for x in c]

        props = p["properties"]
        out.append(json.dumps({"kind": props["kind"], "shape": props["shape"],
                               "terms": sorted(props["terms"]), "data": props["data"],
                               "type": g["type"], "coords": rnd(g["coordinates"])},
                              sort_keys=True))
    return sorted(out)


def test_twenty_step_undo_redo(live_server: LiveServer, context: Any, page: Any,
                               converted_slide: Path) -> None:
    csrf, project, iid = admin_project_slide(context, live_server, converted_slide,
                                             project="Undo", image="undo")
    pid = project["id"]
    t1 = api_call(context, "POST", f"/api/projects/{pid}/terms", csrf,
                  {"name": "Tumour", "color": "#e5484d"})["id"]
    t2 = api_call(context, "POST", f"/api/projects/{pid}/terms", csrf,
                  {"name": "Stroma", "color": "#30a46c"})["id"]
    url = f"/api/images/{iid}/annotations"
    seeds = {
        "A": {"shape": {"type": "rectangle", "x": 300, "y": 300, "width": 400, "height": 300},
              "terms": [t1], "data": {"score": 3}},
        "B": {"geometry": {"type": "Polygon", "coordinates": [[[1300, 300], [1800, 350],
                                                               [1700, 800], [1250, 700],
                                                               [1300, 300]]]},
              "terms": [t2], "data": {"note": "margin"}},
        "C": {"shape": {"type": "ellipse", "cx": 700, "cy": 1800, "rx": 250, "ry": 150},
              "terms": [], "data": {"grade": "G2"}},
    }
    seeded = {k: api_call(context, "POST", url, csrf, {**v, "project_id": pid})["id"]
              for k, v in seeds.items()}
    start = _state(context, csrf, iid)
    assert len(start) == 3

    ui_login(page, *ADMIN, next_path=f"/viewer/{iid}?project={pid}")
    wait_tiles(page)
    page.wait_for_function("window.microtome.edits !== undefined"
                           " && window.microtome.annotations.features.size === 3")
    box = page.locator("#osd").bounding_box()

    def screen(ix: float, iy: float) -> tuple[float, float]:
        sx, sy = page.evaluate(f"""(() => {{ const m = window.microtome.annotations.transform();
            return [m[0] * {ix} + m[2] * {iy} + m[4], m[1] * {ix} + m[3] * {iy} + m[5]]; }})()""")
        return box["x"] + sx, box["y"] + sy

    def drag(a: tuple[float, float], b: tuple[float, float],
             via: list[tuple[float, float]] | None = None) -> None:
        page.mouse.move(*a)
        page.mouse.down()
        for p in (via or []) + [b]:
            page.mouse.move(*p, steps=5)
        page.mouse.up()

    steps = 0

    def done() -> None:
        nonlocal steps
        steps += 1
        page.wait_for_function(f"{HISTORY}.undoStack.length === {steps}"
                               " && window.microtome.annotations.local.size === 0")

    def live(key: str) -> int:
        return int(page.evaluate(f"{HISTORY}.resolve({seeded[key]})"))

    def select_at(ix: float, iy: float) -> int:
        page.keyboard.press("s")
        page.mouse.click(*screen(ix, iy))
        page.wait_for_function("window.microtome.annotations.selectedId !== null")
        return int(page.evaluate("window.microtome.annotations.selectedId"))

    def move(ix: float, iy: float, dx: float, dy: float) -> None:
        select_at(ix, iy)
        a = screen(ix, iy)
        drag(a, (a[0] + dx, a[1] + dy))
        done()

    def set_term(ix: float, iy: float, term: int | None) -> None:
        select_at(ix, iy)
        page.select_option("#selected-term", "" if term is None else str(term))
        done()

    def delete(ix: float, iy: float) -> None:
        select_at(ix, iy)
        page.keyboard.press("Delete")
        done()

    def reshape(ix: float, iy: float, vertex: tuple[float, float], dx: float, dy: float) -> None:
        select_at(ix, iy)
        a = screen(*vertex)
        drag(a, (a[0] + dx, a[1] + dy))
        done()

    # 1-2: rectangle and circle drawn.
    page.keyboard.press("b")
    drag(screen(300, 1000), screen(600, 1300))
    done()
    page.keyboard.press("c")
    drag(screen(1500, 1500), screen(1650, 1500))
    done()
    # 3-5: the seeded rectangle moved (stays a rectangle), re-termed, deleted.
    move(500, 450, 25, 10)
    set_term(560, 480, t2)
    delete(560, 480)
    # 6-7: the seeded polygon reshaped by a vertex, then deleted.
    reshape(1500, 500, (1800, 350), 20, -10)
    delete(1500, 500)
    # 8: a polygon by clicks and Enter.
    page.keyboard.press("g")
    for p in [(1000, 2300), (1400, 2300), (1300, 2700)]:
        page.mouse.click(*screen(*p))
        page.wait_for_timeout(120)
    page.keyboard.press("Enter")
    done()
    # 9-11: the seeded ellipse moved, given a term, deleted.
    move(700, 1800, -15, 15)
    set_term(650, 1850, t1)
    delete(650, 1850)
    # 12: a point.
    page.keyboard.press("p")
    page.mouse.click(*screen(1900, 2600))
    done()
    # 13-15: the drawn rectangle moved, re-termed, reshaped (becomes a polygon).
    move(450, 1150, 20, 0)
    set_term(520, 1150, t1)
    corner = page.evaluate("(() => { const l = window.microtome.annotations;"
                           " return l.get(l.selectedId).geometry.coordinates[0][2]; })()")
    reshape(520, 1150, tuple(corner), 15, 15)
    # 16: the circle deleted.
    delete(1500, 1500)
    # 17-18: a line, then its term.
    page.keyboard.press("i")
    page.mouse.click(*screen(200, 2500))
    page.wait_for_timeout(150)
    page.mouse.dblclick(*screen(700, 2800))
    done()
    line_mid = (450, 2650)
    set_term(*line_mid, t2)
    # 19: the (re-shaped) rectangle deleted.
    delete(540, 1150)
    # 20: a freehand shape.
    page.keyboard.press("d")
    drag(screen(1600, 1900), screen(1700, 2200), via=[screen(1900, 1950), screen(1950, 2150)])
    done()
    assert steps == 20
    end = _state(context, csrf, iid)
    screenshot(page, "undo-00-after-20-steps")
    kinds = sorted(json.loads(s)["kind"] for s in end)
    assert kinds == ["line", "point", "polygon", "polygon"], kinds

    # Twenty undos (the Undo button for one of them): back to the start.
    page.keyboard.press("v")
    for k in range(1, 21):
        if k == 10:
            page.click("#undo")
        else:
            page.keyboard.press("Control+z")
        page.wait_for_function(f"{HISTORY}.redoStack.length === {k}")
    page.wait_for_function(f"{HISTORY}.undoStack.length === 0")
    assert page.locator("#undo").is_disabled()
    assert _state(context, csrf, iid) == start
    # The seeded annotations are back under new ids that the history follows.
    assert live("A") != seeded["A"] and live("B") != seeded["B"] and live("C") != seeded["C"]
    screenshot(page, "undo-01-all-undone")

    # Twenty redos, with both shortcuts: the state after the sequence again.
    for k in range(1, 21):
        page.keyboard.press("Control+Shift+Z" if k % 2 else "Control+y")
        page.wait_for_function(f"{HISTORY}.undoStack.length === {k}")
    page.wait_for_function(f"{HISTORY}.redoStack.length === 0")
    assert _state(context, csrf, iid) == end
    screenshot(page, "undo-02-all-redone")

    # And back half way, then a new edit forgets what could be redone.
    for k in range(1, 6):
        page.keyboard.press("Control+z")
        page.wait_for_function(f"{HISTORY}.redoStack.length === {k}")
    page.keyboard.press("p")
    page.mouse.click(*screen(2000, 300))
    page.wait_for_function(f"{HISTORY}.redoStack.length === 0 && {HISTORY}.undoStack.length === 16")
    assert page.locator("#redo").is_disabled()


def test_undo_skips_a_step_refused_for_good(live_server: LiveServer, context: Any, page: Any,
                                            converted_slide: Path, console: ConsoleLog) -> None:
    """An annotation deleted by someone else meanwhile: its step is skipped with a
    message, and the history goes on (no endless 404)."""
    csrf, project, iid = admin_project_slide(context, live_server, converted_slide,
                                             project="Skip", image="skip")
    ui_login(page, *ADMIN, next_path=f"/viewer/{iid}?project={project['id']}")
    wait_tiles(page)
    page.wait_for_function("window.microtome.edits !== undefined")
    box = page.locator("#osd").bounding_box()
    page.keyboard.press("p")
    for k, x in enumerate((300, 400), start=1):
        page.mouse.click(box["x"] + x, box["y"] + 300)
        page.wait_for_function(f"{HISTORY}.undoStack.length === {k}")
    first, second = page.evaluate(f"{HISTORY}.undoStack.map(e => e.id)")
    # Deleted behind the viewer's back (the login above made a new session).
    csrf = page.evaluate("JSON.parse(localStorage.getItem('microtome.session')).csrf_token")
    api_call(context, "DELETE", f"/api/annotations/{second}", csrf)
    console.expected.append(f"/api/annotations/{second}")
    page.keyboard.press("Control+z")
    expect(page.locator(".toast.error")).to_contain_text("skipped")
    page.wait_for_function(f"{HISTORY}.undoStack.length === 1 && {HISTORY}.redoStack.length === 0")
    page.keyboard.press("Control+z")
    page.wait_for_function(f"{HISTORY}.redoStack.length === 1")
    ids = [f["id"] for f in api_call(
        context, "GET", f"/api/images/{iid}/annotations?bbox=0,0,100000,100000", csrf)["features"]]
    assert first not in ids and ids == []
