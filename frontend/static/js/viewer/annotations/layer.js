// The annotation layer: one <canvas> over OpenSeadragon, redrawn every frame
// the view changes.  Shapes of the same term are merged into one Path2D in
// image coordinates, so a frame is a setTransform plus one fill/stroke per
// term, whatever the count: tens of thousands of shapes stay smooth.  The
// fill is non-zero with rings oriented (outer clockwise, holes anticlockwise)
// so shapes nested in others of the same term stay filled.
// Data comes from the viewport query (bbox + scale); at low zoom the server
// answers with clusters (centroid + count) instead of shapes.
import { bboxOf } from "./geom.js";

const DEFAULT_COLOR = "#ffd400";

export class AnnotationLayer {
  constructor(viewer, canvas, { fetchViewport }) {
    this.viewer = viewer;
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.fetchViewport = fetchViewport;
    /** id → feature {id, geometry, terms, bbox, pending?, error?} of the last viewport answer. */
    this.features = new Map();
    /** Locally created/edited shapes not (yet) confirmed by the server, by id or temp id. */
    this.local = new Map();
    this.clusters = [];
    this.lod = "features";
    this.terms = new Map(); // id → {id, name, color}
    this.hiddenTerms = new Set();
    this.opacity = 0.35;
    this.fill = true;
    this.selectedId = null;
    this.canEdit = null; // (feature) → bool, set by the panel; null: everything
    this.overlayDraw = null; // tool preview callback (ctx, toScreen)
    this.groups = null; // term key → {color, path, points}
    this.fetched = null; // {box, scale}
    this.inflight = null;
    this.frameTimes = [];
    /** Count of confirmed writes; a viewport answer older than the last write is refetched. */
    this.writes = 0;
    this.onData = () => {};
    // Inside OpenSeadragon's canvas container: above the tiles, below the
    // navigator and controls (which then stay readable over dense shapes).
    viewer.canvas.appendChild(canvas);
    this.resize();
    new ResizeObserver(() => { this.resize(); this.draw(); }).observe(canvas.parentElement);
    viewer.addHandler("update-viewport", () => { this.draw(); this.refreshSoon(); });
    viewer.addHandler("animation-finish", () => this.refresh());
    viewer.addHandler("open", () => this.refresh(true));
  }

  resize() {
    const dpr = window.devicePixelRatio || 1;
    const el = this.canvas.parentElement;
    this.dpr = dpr;
    this.canvas.width = Math.round(el.clientWidth * dpr);
    this.canvas.height = Math.round(el.clientHeight * dpr);
    this.canvas.style.width = `${el.clientWidth}px`;
    this.canvas.style.height = `${el.clientHeight}px`;
  }

  item() { return this.viewer.world.getItemAt(0); }

  /** Image px → screen (CSS) px as an affine [a, b, c, d, e, f] (handles rotation). */
  transform() {
    const item = this.item();
    if (!item) return null;
    const P = OpenSeadragon.Point;
    const o = item.imageToViewerElementCoordinates(new P(0, 0));
    const x = item.imageToViewerElementCoordinates(new P(1000, 0));
    const y = item.imageToViewerElementCoordinates(new P(0, 1000));
    return [(x.x - o.x) / 1000, (x.y - o.y) / 1000, (y.x - o.x) / 1000, (y.y - o.y) / 1000, o.x, o.y];
  }

  /** Screen px per image px at the current zoom. */
  scale() {
    const m = this.transform();
    return m ? Math.hypot(m[0], m[1]) : 1;
  }

  /** The visible part of the image as [x0, y0, x1, y1] image px (rotation-safe). */
  visibleBox() {
    const item = this.item();
    const el = this.canvas.parentElement;
    const corners = [[0, 0], [el.clientWidth, 0], [0, el.clientHeight], [el.clientWidth, el.clientHeight]]
      .map(([x, y]) => item.viewerElementToImageCoordinates(new OpenSeadragon.Point(x, y)));
    return [Math.min(...corners.map((p) => p.x)), Math.min(...corners.map((p) => p.y)),
      Math.max(...corners.map((p) => p.x)), Math.max(...corners.map((p) => p.y))];
  }

  /**
   * Refresh during continuous movement (drags, immediate pans): at most every
   * 120 ms while moving, and once more when the view settles.
   */
  refreshSoon() {
    const now = performance.now();
    if (now - (this.lastRefresh || 0) > 120) {
      this.lastRefresh = now;
      this.refresh();
    }
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.refresh(), 150);
  }

  /** Ask the server again when the view left the fetched box or the zoom changed a lot. */
  async refresh(force = false) {
    if (!this.item()) return;
    const box = this.visibleBox();
    const scale = this.scale();
    const covers = (f) => f && box[0] >= f.box[0] && box[1] >= f.box[1] && box[2] <= f.box[2]
      && box[3] <= f.box[3] && scale / f.scale < 1.8 && f.scale / scale < 1.8;
    if (!force && covers(this.fetched)) return;
    // A request on its way that will cover this view: let it finish.
    if (!force && this.inflight && covers(this.inflight.want)) return;
    // Fetch a margin around the view so small pans need no request.
    const w = box[2] - box[0];
    const h = box[3] - box[1];
    const want = [box[0] - w / 2, box[1] - h / 2, box[2] + w / 2, box[3] + h / 2];
    if (this.inflight) this.inflight.abort();
    const controller = new AbortController();
    controller.want = { box: want, scale };
    this.inflight = controller;
    const writes = this.writes;
    try {
      const data = await this.fetchViewport(want, 1 / scale, controller.signal);
      if (controller.signal.aborted) return;
      // A save/delete finished while this answer was on its way: it may not
      // include that change, so ask again rather than show stale shapes.
      if (writes !== this.writes) { this.inflight = null; this.refresh(true); return; }
      this.fetched = { box: want, scale };
      this.setData(data);
    } catch (e) {
      if (e.name !== "AbortError") console.warn("annotation query failed", e);
    } finally {
      if (this.inflight === controller) this.inflight = null;
    }
  }

  setData(fc) {
    this.lod = fc.lod || "features";
    // Keep the exact copies (fetched for a selection or returned by a write):
    // the viewport's are rounded, and simplified when zoomed out.
    const old = this.features;
    this.features = new Map();
    this.clusters = [];
    // Cluster cell side in image px (the server divides the longer side of the box by grid).
    const b = fc.bbox;
    this.clusterCell = b && fc.grid ? Math.max(b[2] - b[0], b[3] - b[1]) / fc.grid : 0;
    for (const f of fc.features || []) {
      if (f.properties && f.properties.cluster) {
        this.clusters.push({ x: f.geometry.coordinates[0], y: f.geometry.coordinates[1], count: f.properties.count, bbox: f.properties.bbox });
      } else {
        const prev = old.get(f.id);
        this.features.set(f.id, prev && prev.full ? prev : toFeature(f));
      }
    }
    this.truncated = Boolean(fc.next_after);
    this.invalidate();
    this.onData(this);
  }

  /** Every shape to draw: the server's, overridden by local edits. */
  *allFeatures() {
    for (const [id, f] of this.features) if (!this.local.has(id)) yield f;
    for (const f of this.local.values()) if (!f.deleted) yield f;
  }

  get(id) { return this.local.get(id) || this.features.get(id); }

  invalidate() { this.groups = null; this.draw(); }

  termColor(termIds) {
    const t = termIds && termIds.length ? this.terms.get(termIds[0]) : null;
    return t ? t.color : DEFAULT_COLOR;
  }

  visible(f) {
    // The layers panel (layers.js) may hide whole authors or analysis runs.
    if (this.layerVisible && !this.layerVisible(f)) return false;
    if (!f.terms || !f.terms.length) return !this.hiddenTerms.has("none");
    return f.terms.some((t) => !this.hiddenTerms.has(t));
  }

  buildGroups() {
    const groups = new Map();
    for (const f of this.allFeatures()) {
      if (!this.visible(f)) continue;
      // An analysis coloured by a measurement (analyses/colour.js), else its layer's colour.
      const color = (this.measureColor && this.measureColor(f))
        || (this.layerColor && this.layerColor(f)) || this.termColor(f.terms);
      let g = groups.get(color);
      if (!g) { g = { color, areasD: [], linesD: [], points: [] }; groups.set(color, g); }
      addToPath(g, f.geometry);
    }
    // One Path2D per term from SVG path data: a single call into the browser
    // instead of one per vertex (several times faster for thousands of shapes).
    for (const g of groups.values()) {
      g.areas = new Path2D(g.areasD.join(""));
      g.lines = new Path2D(g.linesD.join(""));
      g.areasD = g.linesD = null;
    }
    this.groups = groups;
  }

  draw() {
    const t0 = performance.now();
    const { ctx, dpr } = this;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    const m = this.transform();
    if (!m) return;
    if (!this.groups) {
      const b0 = performance.now();
      this.buildGroups();
      this.lastBuildMs = performance.now() - b0;
    }
    const s = Math.hypot(m[0], m[1]);
    ctx.setTransform(m[0] * dpr, m[1] * dpr, m[2] * dpr, m[3] * dpr, m[4] * dpr, m[5] * dpr);
    ctx.lineWidth = 1.5 / s;
    ctx.lineJoin = "round";
    for (const g of this.groups.values()) {
      if (this.fill && this.opacity > 0) {
        ctx.globalAlpha = this.opacity;
        ctx.fillStyle = g.color;
        // Non-zero winding with outer rings one way and holes the other
        // (addToPath): every annotation is filled, also inside another of
        // the same term; only a polygon's own holes stay open.
        ctx.fill(g.areas, "nonzero");
      }
      ctx.globalAlpha = Math.min(1, 0.4 + this.opacity);
      ctx.strokeStyle = g.color;
      ctx.stroke(g.areas);
      ctx.stroke(g.lines);
    }
    // Points and clusters keep a constant size on screen: draw in screen space.
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const toScreen = (x, y) => [m[0] * x + m[2] * y + m[4], m[1] * x + m[3] * y + m[5]];
    for (const g of this.groups.values()) {
      if (!g.points.length) continue;
      ctx.globalAlpha = Math.min(1, 0.4 + this.opacity);
      ctx.fillStyle = g.color;
      const p = new Path2D();
      for (const [x, y] of g.points) {
        const [sx, sy] = toScreen(x, y);
        p.moveTo(sx + 4, sy);
        p.arc(sx, sy, 4, 0, 2 * Math.PI);
      }
      ctx.fill(p);
    }
    ctx.globalAlpha = 1;
    if (this.clusters.length) this.drawClusters(toScreen);
    const sel = this.selectedId !== null ? this.get(this.selectedId) : null;
    if (sel && !sel.deleted) this.drawSelection(sel, toScreen);
    for (const f of this.local.values()) if (f.error && !f.deleted) this.drawShape(f.geometry, toScreen, "#e5484d", [6, 4]);
    if (this.overlayDraw) this.overlayDraw(ctx, toScreen);
    const dt = performance.now() - t0;
    this.frameTimes.push(dt);
    if (this.frameTimes.length > 600) this.frameTimes.splice(0, 300);
  }

  drawClusters(toScreen) {
    const { ctx } = this;
    // Circles never larger than their grid cell, so dense areas do not turn
    // into a solid sheet hiding the slide; counts only where they fit.
    const cellPx = this.clusterCell ? this.clusterCell * this.scale() : 40;
    const rMax = Math.max(4, Math.min(24, cellPx * 0.45));
    const maxCount = this.clusters.reduce((m, c) => Math.max(m, c.count), 1);
    ctx.font = "11px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    const dots = new Path2D();
    const labels = [];
    for (const c of this.clusters) {
      const [x, y] = toScreen(c.x, c.y);
      const r = Math.max(3, rMax * Math.sqrt(c.count / maxCount));
      dots.moveTo(x + r, y);
      dots.arc(x, y, r, 0, 2 * Math.PI);
      if (r >= 10) labels.push([x, y, c.count]);
    }
    ctx.fillStyle = "rgba(242, 140, 40, 0.55)";
    ctx.strokeStyle = "rgba(255, 255, 255, 0.8)";
    ctx.lineWidth = 1;
    ctx.fill(dots);
    ctx.stroke(dots);
    ctx.fillStyle = "#1d232b";
    for (const [x, y, n] of labels) {
      ctx.fillText(n >= 1000 ? `${(n / 1000).toFixed(n >= 10000 ? 0 : 1)}k` : String(n), x, y);
    }
  }

  /** A geometry in screen space (for previews, selection and failed saves). */
  drawShape(geometry, toScreen, color, dash = []) {
    const { ctx } = this;
    ctx.save();
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.setLineDash(dash);
    const p = new Path2D();
    const line = (pts, close) => {
      pts.forEach(([x, y], i) => { const [sx, sy] = toScreen(x, y); if (i) p.lineTo(sx, sy); else p.moveTo(sx, sy); });
      if (close) p.closePath();
    };
    if (geometry.type === "Point") {
      const [sx, sy] = toScreen(...geometry.coordinates);
      p.moveTo(sx + 6, sy);
      p.arc(sx, sy, 6, 0, 2 * Math.PI);
    } else if (geometry.type === "LineString") line(geometry.coordinates, false);
    else if (geometry.type === "Polygon") geometry.coordinates.forEach((r) => line(r, true));
    else if (geometry.type === "MultiPolygon") geometry.coordinates.forEach((poly) => poly.forEach((r) => line(r, true)));
    ctx.stroke(p);
    ctx.restore();
  }

  drawSelection(f, toScreen) {
    this.drawShape(f.geometry, toScreen, "#ffffff", [5, 3]);
    const { ctx } = this;
    ctx.fillStyle = "#ffffff";
    ctx.strokeStyle = "#1f4e79";
    ctx.lineWidth = 1.5;
    if (f.geometry.type === "MultiPolygon") return;
    if (this.canEdit && !this.canEdit(f)) return; // no handles on what cannot be edited
    const verts = f.geometry.type === "Point" ? [f.geometry.coordinates]
      : f.geometry.type === "LineString" ? f.geometry.coordinates : f.geometry.coordinates[0].slice(0, -1);
    if (verts.length > 400) return; // too dense to edit point by point
    for (const [x, y] of verts) {
      const [sx, sy] = toScreen(x, y);
      ctx.fillRect(sx - 4, sy - 4, 8, 8);
      ctx.strokeRect(sx - 4, sy - 4, 8, 8);
    }
  }

  /** Frame-time statistics of the last draws (for the performance test). */
  frameStats() {
    const t = [...this.frameTimes].sort((a, b) => a - b);
    if (!t.length) return null;
    const q = (p) => t[Math.min(t.length - 1, Math.floor(p * t.length))];
    return { n: t.length, median: q(0.5), p95: q(0.95), max: t[t.length - 1] };
  }
}

export function toFeature(f) {
  const p = f.properties || {};
  return { id: f.id, geometry: f.geometry, terms: p.terms || [], bbox: f.bbox || bboxOf(f.geometry), properties: p };
}

/** Twice the signed area of a ring (> 0: clockwise on screen, y down). */
export function ringWinding(r) {
  let s = 0;
  for (let i = 0, n = r.length; i < n; i += 1) {
    const a = r[i];
    const b = r[(i + 1) % n];
    s += a[0] * b[1] - b[0] * a[1];
  }
  return s;
}

function addToPath(g, geometry) {
  // SVG path data in image px; 2 decimals are far below a screen pixel.
  const pts = (c) => {
    let d = `M${c[0][0].toFixed(2)} ${c[0][1].toFixed(2)}`;
    for (let i = 1; i < c.length; i += 1) d += `L${c[i][0].toFixed(2)} ${c[i][1].toFixed(2)}`;
    return d;
  };
  // Outer rings clockwise, holes anticlockwise, whatever order they came in.
  const ring = (r, hole) => {
    if (!r.length) return;
    const cw = ringWinding(r) > 0;
    g.areasD.push(`${pts(cw === !hole ? r : [...r].reverse())}Z`);
  };
  const polygon = (rings) => rings.forEach((r, i) => ring(r, i > 0));
  switch (geometry.type) {
    case "Polygon": polygon(geometry.coordinates); break;
    case "MultiPolygon": for (const poly of geometry.coordinates) polygon(poly); break;
    case "LineString": if (geometry.coordinates.length) g.linesD.push(pts(geometry.coordinates)); break;
    case "MultiLineString": for (const l of geometry.coordinates) if (l.length) g.linesD.push(pts(l)); break;
    case "Point": g.points.push(geometry.coordinates); break;
    case "MultiPoint": for (const p of geometry.coordinates) g.points.push(p); break;
    default: break;
  }
}
