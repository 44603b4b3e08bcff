// Pure geometry in image pixels (level 0, y down): measurements, hit tests,
// shape construction.  No DOM, no OpenSeadragon.

/** Signed-area-free polygon area (shoelace) of one ring [[x, y], ...], px². */
export function ringArea(ring) {
  let s = 0;
  for (let i = 0, n = ring.length; i < n; i += 1) {
    const [x0, y0] = ring[i];
    const [x1, y1] = ring[(i + 1) % n];
    s += x0 * y1 - x1 * y0;
  }
  return Math.abs(s) / 2;
}

export function pathLength(points, closed = false) {
  let s = 0;
  const n = points.length;
  for (let i = 1; i < n; i += 1) s += Math.hypot(points[i][0] - points[i - 1][0], points[i][1] - points[i - 1][1]);
  if (closed && n > 2) s += Math.hypot(points[0][0] - points[n - 1][0], points[0][1] - points[n - 1][1]);
  return s;
}

/** {area, length} in µm² / µm (or px² / px when the pixel size is unknown). */
export function measure(geometry, pixelUm) {
  const k = pixelUm || 1;
  const g = geometry;
  if (!g) return { area: 0, length: 0 };
  if (g.type === "Polygon") {
    const area = ringArea(g.coordinates[0]) - g.coordinates.slice(1).reduce((a, r) => a + ringArea(r), 0);
    return { area: area * k * k, length: pathLength(g.coordinates[0], true) * k };
  }
  if (g.type === "MultiPolygon") {
    return g.coordinates.reduce((acc, poly) => {
      const m = measure({ type: "Polygon", coordinates: poly }, pixelUm);
      return { area: acc.area + m.area, length: acc.length + m.length };
    }, { area: 0, length: 0 });
  }
  if (g.type === "LineString") return { area: 0, length: pathLength(g.coordinates) * k };
  return { area: 0, length: 0 };
}

export function bboxOf(geometry) {
  let x0 = Infinity; let y0 = Infinity; let x1 = -Infinity; let y1 = -Infinity;
  const visit = (c) => {
    if (typeof c[0] === "number") {
      if (c[0] < x0) x0 = c[0];
      if (c[0] > x1) x1 = c[0];
      if (c[1] < y0) y0 = c[1];
      if (c[1] > y1) y1 = c[1];
    } else for (const d of c) visit(d);
  };
  visit(geometry.coordinates);
  return [x0, y0, x1, y1];
}

export function pointInRing(x, y, ring) {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i, i += 1) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

export function distToSegment(x, y, [ax, ay], [bx, by]) {
  const dx = bx - ax;
  const dy = by - ay;
  const len2 = dx * dx + dy * dy;
  const t = len2 ? Math.max(0, Math.min(1, ((x - ax) * dx + (y - ay) * dy) / len2)) : 0;
  return Math.hypot(x - (ax + t * dx), y - (ay + t * dy));
}

/** Does `geometry` contain (x, y), or pass within `tol` image px of it? */
export function hits(geometry, x, y, tol) {
  const g = geometry;
  if (g.type === "Point") return Math.hypot(g.coordinates[0] - x, g.coordinates[1] - y) <= tol;
  if (g.type === "LineString") {
    const c = g.coordinates;
    for (let i = 1; i < c.length; i += 1) if (distToSegment(x, y, c[i - 1], c[i]) <= tol) return true;
    return false;
  }
  const polys = g.type === "Polygon" ? [g.coordinates] : g.type === "MultiPolygon" ? g.coordinates : [];
  for (const poly of polys) {
    if (pointInRing(x, y, poly[0]) && !poly.slice(1).some((r) => pointInRing(x, y, r))) return true;
    for (const ring of poly) {
      for (let i = 1; i < ring.length; i += 1) if (distToSegment(x, y, ring[i - 1], ring[i]) <= tol) return true;
    }
  }
  return false;
}

/** A closed GeoJSON ring (first point repeated at the end). */
export function closeRing(points) {
  const ring = points.map((p) => [p[0], p[1]]);
  const a = ring[0];
  const b = ring[ring.length - 1];
  if (a[0] !== b[0] || a[1] !== b[1]) ring.push([a[0], a[1]]);
  return ring;
}

export function rectangle([x0, y0], [x1, y1]) {
  const ax = Math.min(x0, x1); const bx = Math.max(x0, x1);
  const ay = Math.min(y0, y1); const by = Math.max(y0, y1);
  return { type: "Polygon", coordinates: [closeRing([[ax, ay], [bx, ay], [bx, by], [ax, by]])] };
}

/** A circle as a polygon (GeoJSON has no circles); `n` vertices. */
export function circle([cx, cy], r, n = 64) {
  const pts = [];
  for (let i = 0; i < n; i += 1) {
    const a = (i / n) * 2 * Math.PI;
    pts.push([cx + r * Math.cos(a), cy + r * Math.sin(a)]);
  }
  return { type: "Polygon", coordinates: [closeRing(pts)] };
}

export function translate(geometry, dx, dy) {
  const move = (c) => (typeof c[0] === "number" ? [c[0] + dx, c[1] + dy] : c.map(move));
  return { type: geometry.type, coordinates: move(geometry.coordinates) };
}

/** Every editable vertex as [ringPath, index] → position; rings skip their closing point. */
export function vertices(geometry) {
  const g = geometry;
  const out = [];
  if (g.type === "Point") out.push({ path: [], p: g.coordinates });
  else if (g.type === "LineString") g.coordinates.forEach((p, i) => out.push({ path: [i], p }));
  else if (g.type === "Polygon") {
    g.coordinates.forEach((ring, r) => ring.slice(0, -1).forEach((p, i) => out.push({ path: [r, i], p })));
  }
  return out;
}

/** A copy of `geometry` with vertex `path` moved to (x, y); keeps rings closed. */
export function moveVertex(geometry, path, x, y) {
  const g = JSON.parse(JSON.stringify(geometry));
  if (g.type === "Point") g.coordinates = [x, y];
  else if (g.type === "LineString") g.coordinates[path[0]] = [x, y];
  else if (g.type === "Polygon") {
    const ring = g.coordinates[path[0]];
    ring[path[1]] = [x, y];
    if (path[1] === 0) ring[ring.length - 1] = [x, y];
  }
  return g;
}
