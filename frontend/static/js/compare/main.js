// Side-by-side page: /compare?images=ID,ID[,ID[,ID]] shows two to four images,
// navigated together (linked) or each on its own.  Panes after the first have
// an alignment onto the first (translate/rotate/scale, saved per image pair
// through /api/images/{first}/alignments/{other}), so serial sections stained
// differently move together.  Manual alignment: unlink, bring a pane onto the
// same tissue as the first, "Capture", fine-tune the numbers, "Save".
import { api } from "../api.js";
import { currentUser, el, renderTopbar, toast } from "../ui.js";
import { IDENTITY, follow, fromViews } from "./align.js";

const $ = (s) => document.querySelector(s);
const state = { panes: [], linked: true, leader: 0, ready: false };
// For the browser tests and the console.
window.compare = state;

function viewOf(pane) {
  const vp = pane.viewer.viewport, item = pane.viewer.world.getItemAt(0);
  if (!item) return null;
  const c = item.viewportToImageCoordinates(vp.getCenter(true));
  return { x: c.x, y: c.y, zoom: item.viewportToImageZoom(vp.getZoom(true)), rotation: vp.getRotation(true) };
}

function setView(pane, v) {
  const vp = pane.viewer.viewport, item = pane.viewer.world.getItemAt(0);
  if (!item) return;
  vp.setRotation(v.rotation, true);
  vp.zoomTo(item.imageToViewportZoom(v.zoom), null, true);
  vp.panTo(item.imageToViewportCoordinates(v.x, v.y), true);
}

/** Bring every other pane onto what pane `from` shows (linked mode). */
function syncFrom(from) {
  const src = state.panes[from];
  const v = src && viewOf(src);
  if (!v) return;
  for (const p of state.panes) if (p !== src && p.opened) setView(p, follow(v, src.transform, p.transform));
}
state.syncFrom = syncFrom;
state.viewOf = (i) => viewOf(state.panes[i]);
state.setView = (i, v) => setView(state.panes[i], v);
state.lead = (i) => { state.leader = i; };

function numberInput(label, value, step) {
  return el("input", { type: "number", step, value: String(value), "aria-label": label, title: label });
}

function alignBar(pane, first) {
  const t = pane.transform;
  const inputs = {
    tx: numberInput("Shift x (px of the first image)", t.tx.toFixed(1), "1"),
    ty: numberInput("Shift y (px of the first image)", t.ty.toFixed(1), "1"),
    rotation: numberInput("Rotation (degrees)", t.rotation.toFixed(2), "0.5"),
    scale: numberInput("Scale", t.scale.toFixed(4), "0.01"),
  };
  const show = () => { for (const [k, input] of Object.entries(inputs)) input.value = String(Number(pane.transform[k].toFixed(k === "scale" ? 4 : 2))); };
  const edited = () => {
    const next = Object.fromEntries(Object.entries(inputs).map(([k, i]) => [k, Number(i.value)]));
    if (!Object.values(next).every(Number.isFinite) || !(next.scale > 0)) return;
    pane.transform = next;
    syncFrom(0);
  };
  for (const input of Object.values(inputs)) input.addEventListener("change", edited);
  const capture = el("button", { type: "button", class: "align-capture", title: "Align so that this pane's view matches the first pane's", onclick: () => {
    const v0 = viewOf(first), vi = viewOf(pane);
    if (!v0 || !vi) return;
    pane.transform = fromViews(v0, vi);
    show();
  } }, "Capture");
  const save = el("button", { type: "button", class: "align-save", onclick: async () => {
    try {
      const doc = await api(`images/${encodeURIComponent(first.id)}/alignments/${encodeURIComponent(pane.id)}`, { method: "PUT", body: pane.transform });
      pane.transform = { tx: doc.tx, ty: doc.ty, rotation: doc.rotation, scale: doc.scale };
      pane.saved = true;
      toast("Alignment saved");
    } catch (e) { toast(`Could not save the alignment: ${e.message}`, "error"); }
  } }, "Save");
  const reset = el("button", { type: "button", class: "align-reset", onclick: async () => {
    try { await api(`images/${encodeURIComponent(first.id)}/alignments/${encodeURIComponent(pane.id)}`, { method: "DELETE" }); } catch (e) { toast(`Could not reset: ${e.message}`, "error"); return; }
    pane.transform = { ...IDENTITY };
    pane.saved = false;
    show();
    syncFrom(0);
  } }, "Reset");
  pane.showTransform = show;
  return [el("span", { class: "muted" }, "Align:"), ...Object.values(inputs), capture, save, reset];
}

function makePane(id, index) {
  const osd = el("div", { class: "osd", id: `pane-osd-${index}`, tabindex: "0", "aria-label": `Image ${index + 1}` });
  const bar = el("div", { class: "pane-bar" }, el("span", { class: "name" }, `Image ${id}`));
  const box = el("section", { class: "compare-pane", "data-index": String(index) }, bar, osd);
  $("#compare-grid").append(box);
  const viewer = OpenSeadragon({
    element: osd, prefixUrl: "/static/vendor/openseadragon/images/", drawer: "canvas",
    showNavigationControl: false, animationTime: 0.4, immediateRender: true,
    maxZoomPixelRatio: 4, visibilityRatio: 0.3, crossOriginPolicy: false,
    gestureSettingsMouse: { clickToZoom: false, dblClickToZoom: true },
  });
  const pane = { id, index, viewer, bar, transform: { ...IDENTITY }, saved: false, opened: false, tilesLoaded: 0 };
  viewer.addHandler("tile-loaded", () => { pane.tilesLoaded += 1; });
  // The pane the user works in leads; the others follow it.
  for (const ev of ["canvas-press", "canvas-scroll", "canvas-drag", "canvas-key"]) viewer.addHandler(ev, () => { state.leader = index; });
  viewer.addHandler("viewport-change", () => { if (state.linked && state.leader === index) syncFrom(index); });
  return pane;
}

function open(pane) {
  return new Promise((resolve) => {
    pane.viewer.addOnceHandler("open", () => { pane.opened = true; resolve(true); });
    pane.viewer.addOnceHandler("open-failed", () => resolve(false));
    pane.viewer.open(`/dzi/${encodeURIComponent(pane.id)}.dzi`);
  });
}

async function main() {
  renderTopbar(await currentUser());
  const ids = (new URLSearchParams(location.search).get("images") || "").split(",").map((s) => s.trim()).filter(Boolean);
  if (ids.length < 2 || ids.length > 4 || new Set(ids).size !== ids.length) {
    $("#compare-status").textContent = "Open this page with ?images= and two to four different image ids.";
    return;
  }
  $("#compare-grid").classList.add(`n${ids.length}`);
  state.panes = ids.map(makePane);
  const first = state.panes[0];
  await Promise.all(state.panes.map(async (p, i) => {
    try { p.bar.querySelector(".name").textContent = (await api(`images/${encodeURIComponent(p.id)}`, { noRedirect: true })).name || `Image ${p.id}`; } catch { /* names are a nicety */ }
    if (i === 0) return;
    try {
      const t = await api(`images/${encodeURIComponent(first.id)}/alignments/${encodeURIComponent(p.id)}`, { noRedirect: true });
      p.transform = { tx: t.tx, ty: t.ty, rotation: t.rotation, scale: t.scale };
      p.saved = t.saved;
    } catch { /* no catalog or no access: unaligned */ }
    p.bar.append(...alignBar(p, first));
  }));
  const opened = await Promise.all(state.panes.map(open));
  if (!opened.every(Boolean)) $("#compare-status").textContent = "Some images could not be opened.";
  const linked = $("#compare-linked");
  state.linked = new URLSearchParams(location.search).get("link") !== "0";
  linked.checked = state.linked;
  linked.addEventListener("change", () => { state.linked = linked.checked; if (state.linked) syncFrom(0); });
  state.setLinked = (on) => { linked.checked = on; linked.dispatchEvent(new Event("change")); };
  if (state.linked) syncFrom(0);
  state.ready = true;
}

main().catch((e) => { $("#compare-status").textContent = `Error: ${e.message}`; });
