// Drawing and editing tools, driven by OpenSeadragon's canvas events (so
// panning keeps working between strokes; a tool that uses a drag sets
// preventDefaultAction to stop the pan).  Coordinates: image px at level 0.
import { circle, closeRing, hits, measure, moveVertex, rectangle, translate, vertices } from "./geom.js";

export const TOOLS = [
  { id: "pan", label: "Pan", key: "v", title: "Pan and zoom (V)" },
  { id: "select", label: "Select", key: "s", title: "Select, move, edit vertices; Delete removes (S)" },
  { id: "point", label: "Point", key: "p", title: "Point (P)" },
  { id: "line", label: "Line", key: "i", title: "Line: click vertices, double-click or Enter to finish (I)" },
  { id: "polygon", label: "Polygon", key: "g", title: "Polygon: click vertices, double-click or Enter to close (G)" },
  { id: "freehand", label: "Freehand", key: "d", title: "Freehand polygon: drag (D)" },
  { id: "rect", label: "Rectangle", key: "b", title: "Rectangle: drag (B)" },
  { id: "circle", label: "Circle", key: "c", title: "Circle: drag from the centre (C)" },
];

export class Tools {
  /**
   * @param layer AnnotationLayer
   * @param hooks {create(geometry, shape), update(id, geometry, "move"|"vertex", delta),
   *   preview(id, geometry), canEdit(id), select(id), measure(text)}
   */
  constructor(viewer, layer, hooks, pixelUm) {
    this.viewer = viewer;
    this.layer = layer;
    this.hooks = hooks;
    this.pixelUm = pixelUm;
    this.tool = "pan";
    this.readOnly = false; // share links: select and inspect only
    this.points = []; // vertices of the shape being drawn
    this.hover = null;
    this.drag = null; // {kind: 'vertex'|'move'|'shape', ...}
    layer.overlayDraw = (ctx, toScreen) => this.drawPreview(toScreen);
    const on = (name, fn) => viewer.addHandler(name, (e) => fn.call(this, e));
    on("canvas-press", this.onPress);
    on("canvas-drag", this.onDrag);
    on("canvas-release", this.onRelease);
    on("canvas-click", this.onClick);
    on("canvas-double-click", this.onDoubleClick);
    viewer.element.addEventListener("pointermove", (e) => this.onMove(e));
    // OpenSeadragon does not always report double clicks (its click timing
    // differs from the browser's): listen to the DOM event as well.
    viewer.element.addEventListener("dblclick", (e) => this.onDoubleClick({ originalEvent: e }));
  }

  toImage(pos) {
    const p = this.layer.item().viewerElementToImageCoordinates(pos);
    return [p.x, p.y];
  }

  /** Hit tolerance: 6 screen px in image px. */
  tol() { return 6 / this.layer.scale(); }

  setTool(tool) {
    this.cancel();
    this.tool = tool;
    // A double click finishes a line/polygon: it must not also zoom.
    this.viewer.gestureSettingsMouse.dblClickToZoom = tool === "pan";
    this.viewer.element.style.cursor = tool === "pan" ? "" : tool === "select" ? "pointer" : "crosshair";
  }

  cancel() {
    this.points = [];
    this.drag = null;
    this.hooks.measure("");
    this.layer.draw();
  }

  drawing() { return !["pan", "select"].includes(this.tool); }

  // -- events ----------------------------------------------------------------
  onPress(e) {
    const p = this.toImage(e.position);
    if (this.tool === "select" && !this.readOnly) {
      const sel = this.layer.selectedId !== null ? this.layer.get(this.layer.selectedId) : null;
      if (!sel || (this.hooks.canEdit && !this.hooks.canEdit(sel.id))) return;
      const tol = this.tol();
      const v = vertices(sel.geometry).find((vx) => Math.hypot(vx.p[0] - p[0], vx.p[1] - p[1]) <= tol);
      if (v && sel.geometry.type !== "Point") this.drag = { kind: "vertex", id: sel.id, path: v.path, start: sel.geometry, geometry: sel.geometry };
      else if (hits(sel.geometry, p[0], p[1], tol)) this.drag = { kind: "move", id: sel.id, from: p, start: sel.geometry, geometry: sel.geometry };
    } else if (["freehand", "rect", "circle"].includes(this.tool)) {
      this.drag = { kind: "shape", from: p };
      this.points = [p];
    }
  }

  onDrag(e) {
    if (!this.drag) return;
    e.preventDefaultAction = true;
    const p = this.toImage(e.position);
    const d = this.drag;
    if (d.kind === "vertex") {
      d.geometry = moveVertex(d.start, d.path, p[0], p[1]);
      this.hooks.preview(d.id, d.geometry);
    } else if (d.kind === "move") {
      d.delta = [p[0] - d.from[0], p[1] - d.from[1]];
      d.geometry = translate(d.start, d.delta[0], d.delta[1]);
      this.hooks.preview(d.id, d.geometry);
    } else if (this.tool === "freehand") {
      const last = this.points[this.points.length - 1];
      if (Math.hypot(p[0] - last[0], p[1] - last[1]) * this.layer.scale() >= 3) this.points.push(p);
    } else {
      this.points = [d.from, p];
    }
    this.showMeasure();
    this.layer.draw();
  }

  onRelease() {
    const d = this.drag;
    if (!d) return;
    this.drag = null;
    if (d.kind === "vertex" || d.kind === "move") {
      if (d.geometry !== d.start) this.hooks.update(d.id, d.geometry, d.kind, d.delta || null);
      return;
    }
    const geometry = this.previewGeometry();
    this.points = [];
    this.hooks.measure("");
    if (!geometry) { this.layer.draw(); return; }
    // Ignore accidental clicks: a shape must be a few screen pixels big.
    const big = this.tool === "freehand" ? true : this.extent(geometry) * this.layer.scale() >= 4;
    if (big) this.hooks.create(geometry, this.shapeOf(d.from, geometry));
    this.layer.draw();
  }

  onClick(e) {
    if (!e.quick) return;
    const p = this.toImage(e.position);
    if (this.tool === "select") {
      e.preventDefaultAction = true;
      this.hooks.select(this.pick(p));
    } else if (this.tool === "point") {
      e.preventDefaultAction = true;
      this.hooks.create({ type: "Point", coordinates: p });
    } else if (this.tool === "line" || this.tool === "polygon") {
      e.preventDefaultAction = true;
      // Clicking the first vertex closes a polygon.
      if (this.tool === "polygon" && this.points.length >= 3) {
        const [fx, fy] = this.points[0];
        if (Math.hypot(fx - p[0], fy - p[1]) <= this.tol()) { this.finish(); return; }
      }
      this.points.push(p);
      this.showMeasure();
      this.layer.draw();
    }
  }

  onDoubleClick(e) {
    if (this.tool === "line" || this.tool === "polygon") {
      e.preventDefaultAction = true;
      if (!this.points.length) return; // already finished by the other listener
      // The double click's two clicks added the same vertex twice.
      this.points = this.points.filter((q, i, a) => i === 0 || q[0] !== a[i - 1][0] || q[1] !== a[i - 1][1]);
      this.finish();
    } else if (this.drawing() || this.tool === "select") {
      e.preventDefaultAction = true;
    }
  }

  onMove(e) {
    if (!(this.tool === "line" || this.tool === "polygon") || !this.points.length) return;
    const rect = this.viewer.element.getBoundingClientRect();
    this.hover = this.toImage(new OpenSeadragon.Point(e.clientX - rect.left, e.clientY - rect.top));
    this.showMeasure();
    this.layer.draw();
  }

  /** Keyboard: Enter finishes, Escape cancels, Backspace drops the last vertex. */
  onKey(e) {
    if (this.points.length && (this.tool === "line" || this.tool === "polygon")) {
      if (e.key === "Enter") { this.finish(); return true; }
      if (e.key === "Backspace") { this.points.pop(); this.showMeasure(); this.layer.draw(); return true; }
    }
    if (e.key === "Escape" && (this.points.length || this.drag)) { this.cancel(); return true; }
    return false;
  }

  finish() {
    const min = this.tool === "polygon" ? 3 : 2;
    if (this.points.length >= min) {
      const geometry = this.tool === "polygon"
        ? { type: "Polygon", coordinates: [closeRing(this.points)] }
        : { type: "LineString", coordinates: this.points.map((p) => [p[0], p[1]]) };
      this.hooks.create(geometry);
    }
    this.points = [];
    this.hover = null;
    this.hooks.measure("");
    this.layer.draw();
  }

  // -- helpers ---------------------------------------------------------------
  pick([x, y]) {
    const tol = this.tol();
    let best = null;
    let bestArea = Infinity;
    for (const f of this.layer.allFeatures()) {
      const b = f.bbox;
      if (x < b[0] - tol || x > b[2] + tol || y < b[1] - tol || y > b[3] + tol) continue;
      if (!this.layer.visible(f) || !hits(f.geometry, x, y, tol)) continue;
      // The smallest shape under the pointer wins (nested regions stay reachable).
      const area = (b[2] - b[0]) * (b[3] - b[1]);
      if (area < bestArea) { best = f.id; bestArea = area; }
    }
    return best;
  }

  extent(g) {
    const c = g.type === "Polygon" ? g.coordinates[0] : g.coordinates;
    const xs = c.map((p) => p[0]);
    const ys = c.map((p) => p[1]);
    return Math.max(Math.max(...xs) - Math.min(...xs), Math.max(...ys) - Math.min(...ys));
  }

  previewGeometry() {
    const pts = this.hover && (this.tool === "line" || this.tool === "polygon") ? [...this.points, this.hover] : this.points;
    if (!pts.length) return null;
    switch (this.tool) {
      case "rect": return pts.length >= 2 ? rectangle(pts[0], pts[1]) : null;
      case "circle": return pts.length >= 2 ? circle(pts[0], Math.hypot(pts[1][0] - pts[0][0], pts[1][1] - pts[0][1])) : null;
      case "freehand": return pts.length >= 3 ? { type: "Polygon", coordinates: [closeRing(pts)] } : null;
      case "polygon": return pts.length >= 3 ? { type: "Polygon", coordinates: [closeRing(pts)] } : { type: "LineString", coordinates: pts };
      case "line": return { type: "LineString", coordinates: pts };
      default: return null;
    }
  }

  /** Parametric shape for rectangles and circles (kept by the server for editing/export). */
  shapeOf(from, geometry) {
    if (this.tool === "rect") {
      const [x0, y0] = geometry.coordinates[0][0];
      const [x1, y1] = geometry.coordinates[0][2];
      return { type: "rectangle", x: Math.min(x0, x1), y: Math.min(y0, y1), width: Math.abs(x1 - x0), height: Math.abs(y1 - y0) };
    }
    if (this.tool === "circle") {
      const [px, py] = geometry.coordinates[0][0];
      return { type: "circle", cx: from[0], cy: from[1], r: Math.hypot(px - from[0], py - from[1]) };
    }
    return null;
  }

  showMeasure() {
    const g = this.drag && this.drag.geometry ? this.drag.geometry : this.previewGeometry();
    if (!g) { this.hooks.measure(""); return; }
    this.hooks.measure(measureText(g, this.pixelUm));
  }

  drawPreview(toScreen) {
    const g = this.previewGeometry();
    if (g) this.layer.drawShape(g, toScreen, "#f28c28");
  }
}

/** "area 1.23 mm² · perimeter 456 µm" for a geometry (µm when the pixel size is known). */
export function measureText(g, pixelUm) {
  const m = measure(g, pixelUm);
  const unit = pixelUm ? "µm" : "px";
  const n = (v) => v.toLocaleString("en", { maximumSignificantDigits: 3 });
  const len = (v) => (pixelUm && v >= 1000 ? `${n(v / 1000)} mm` : `${n(v)} ${unit}`);
  const area = (v) => (pixelUm && v >= 1e5 ? `${n(v / 1e6)} mm²` : `${n(v)} ${unit}²`);
  if (g.type === "Polygon" || g.type === "MultiPolygon") return `area ${area(m.area)} · perimeter ${len(m.length)}`;
  if (g.type === "LineString") return `length ${len(m.length)}`;
  return "";
}
