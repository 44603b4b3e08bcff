// The current view as URL parameters (x, y, zoom in image pixels; rotation),
// so "copy link" reopens exactly this view.

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

export function viewUrl(viewer, base = location.href) {
  const url = new URL(base);
  for (const k of ["x", "y", "z", "r"]) url.searchParams.delete(k);
  for (const [k, v] of Object.entries(viewToParams(viewer))) url.searchParams.set(k, String(v));
  return url.toString();
}
