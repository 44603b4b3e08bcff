// Alignment math of the side-by-side view (pure; mirrors catalog/alignment.py).
// A transform {tx, ty, rotation, scale} maps a pixel p of pane i onto the
// first pane's pixels: scale · R(rotation) · p + (tx, ty), R clockwise on
// screen (y down), rotation in degrees.  A view is {x, y, zoom, rotation}:
// the centre in image pixels, screen px per image px, and OpenSeadragon's
// clockwise rotation.

export const IDENTITY = Object.freeze({ tx: 0, ty: 0, rotation: 0, scale: 1 });

const rad = (d) => (d * Math.PI) / 180;

export function apply(t, x, y) {
  const c = Math.cos(rad(t.rotation)), s = Math.sin(rad(t.rotation));
  return [t.scale * (c * x - s * y) + t.tx, t.scale * (s * x + c * y) + t.ty];
}

export function inverse(t) {
  const c = Math.cos(rad(t.rotation)), s = Math.sin(rad(t.rotation)), k = 1 / t.scale;
  return { tx: -k * (c * t.tx + s * t.ty), ty: -k * (-s * t.tx + c * t.ty), rotation: -t.rotation, scale: k };
}

/** The view of pane i that shows what `view` of pane j shows (tj, ti: their transforms). */
export function follow(view, tj, ti) {
  const [x0, y0] = apply(tj, view.x, view.y);
  const [x, y] = apply(inverse(ti), x0, y0);
  return { x, y, zoom: (view.zoom * ti.scale) / tj.scale, rotation: view.rotation - tj.rotation + ti.rotation };
}

/**
 * The transform of pane i that makes its current view `vi` show what the
 * first pane's current view `v0` shows (manual alignment: navigate both
 * panes onto the same tissue, then capture).
 */
export function fromViews(v0, vi) {
  const rotation = vi.rotation - v0.rotation;
  const scale = vi.zoom / v0.zoom;
  const [rx, ry] = apply({ tx: 0, ty: 0, rotation, scale }, vi.x, vi.y);
  return { tx: v0.x - rx, ty: v0.y - ry, rotation: ((rotation + 540) % 360) - 180, scale };
}
