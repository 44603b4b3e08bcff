// The current view as URL parameters, so "copy link" (and a reload) reopens
// exactly this view: x, y, z (zoom, in screen px per image px; `z` is the
// zoom for historical reasons, so planes use other names), r (rotation), plus
// what the panels register: plane/time, channels, brightness/contrast/gamma.

/** name → () => {param: value}: the panels' parts of a view link. */
const parts = new Map();
/** Every parameter a part may write (one back at its default leaves the URL). */
const owned = new Set();

export function registerLinkPart(name, keys, fn) {
  parts.set(name, fn);
  for (const k of keys) owned.add(k);
}

export function viewToParams(viewer) {
  const vp = viewer.viewport;
  const item = viewer.world.getItemAt(0);
  if (!item) return {};
  const c = item.viewportToImageCoordinates(vp.getCenter(true));
  const z = item.viewportToImageZoom(vp.getZoom(true));
  const p = { x: Math.round(c.x), y: Math.round(c.y), z: Number(z.toPrecision(4)) };
  const r = Math.round(vp.getRotation(true));
  if (r % 360) p.r = ((r % 360) + 360) % 360;
  return p;
}

export function paramsToView(viewer, params) {
  const item = viewer.world.getItemAt(0);
  const x = Number(params.get("x"));
  const y = Number(params.get("y"));
  const z = Number(params.get("z"));
  const r = Number(params.get("r"));
  if (!item) return;
  if (Number.isFinite(r) && params.has("r")) viewer.viewport.setRotation(r, true);
  if (params.has("x") && params.has("y") && Number.isFinite(x) && Number.isFinite(y)) {
    if (params.has("z") && z > 0) viewer.viewport.zoomTo(item.imageToViewportZoom(z), null, true);
    viewer.viewport.panTo(item.imageToViewportCoordinates(x, y), true);
  }
}

/** `url` with the registered parts' parameters brought up to date. */
export function withParts(base = location.href) {
  const url = new URL(base);
  const values = {};
  for (const fn of parts.values()) Object.assign(values, fn());
  for (const k of owned) url.searchParams.delete(k);
  for (const [k, v] of Object.entries(values)) if (v !== null && v !== undefined && v !== "") url.searchParams.set(k, String(v));
  return url;
}

/** Keep the address bar in step with the panels (a reload restores them). */
export function syncUrl() {
  history.replaceState(history.state, "", withParts().toString());
}

export function viewUrl(viewer, base = location.href) {
  const url = withParts(base);
  for (const k of ["x", "y", "z", "r"]) url.searchParams.delete(k);
  for (const [k, v] of Object.entries(viewToParams(viewer))) url.searchParams.set(k, String(v));
  return url.toString();
}
