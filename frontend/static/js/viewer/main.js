// Viewer page: OpenSeadragon on the DZI source (IIIF fallback), scale bar,
// magnification, rotation, full screen, shortcuts, link to the current view,
// slide details; channels and annotations are wired in from their modules.
import { api, ApiError, items } from "../api.js";
import { currentUser, el, formatBytes, idFromPath, renderTopbar, toast } from "../ui.js";
import { magnifications, niceScale, objectivePower } from "./scale.js";
import { paramsToView, registerLinkPart, syncUrl, viewUrl } from "./link.js";
import { normalizeMeta } from "./meta.js";
import { setupChannels } from "./channels.js";
import { setupAnnotations } from "./annotations/panel.js";
import { setupShare, resolveShare } from "./share.js";
import { isTyping, setupShortcutHelp } from "./keys.js";
import { setupNav } from "./nav.js";
import { setupAdjust } from "./adjust.js";
import { FILTER_KEYS, setupFilters } from "./filters.js";
import { shardTiles } from "./shard.js";
import { setupAnalyses } from "./analyses/panel.js";
import { setupLive } from "./live.js";
import { setupAbout } from "./about.js";
import { setupExport } from "./export.js";
import { setupSimilar } from "./similar.js";
import { setupMsi } from "./msi.js";

const $ = (s) => document.querySelector(s);
const state = { id: null, meta: null, image: null, viewer: null, token: null, user: null, renderQuery: "" };
// Exposed for the browser tests and for debugging from the console.
window.microtome = { state, tilesLoaded: 0, tilesFailed: 0, opened: false };

function tileQuery() {
  const q = new URLSearchParams(state.renderQuery);
  if (state.token) q.set("share", state.token);
  const s = q.toString();
  return s ? `?${s}` : "";
}

function dziUrl() { return `/dzi/${encodeURIComponent(state.id)}.dzi${tileQuery()}`; }
function iiifUrl() { return `/iiif/3/${encodeURIComponent(state.id)}/info.json${tileQuery()}`; }
export function imageUrl(path) { return `/images/${encodeURIComponent(state.id)}/${path}`; }

function showStatus(text, isError = false) {
  const box = $("#viewer-status");
  box.hidden = !text;
  box.textContent = text || "";
  box.classList.toggle("error", isError);
}

async function waitUntilReady() {
  // Catalog mode: a slide still converting is announced and opened when ready.
  // Without a catalog entry (tile server alone) we go straight to the tiles.
  for (;;) {
    let image;
    try {
      image = await api(`images/${encodeURIComponent(state.id)}`, { noRedirect: true });
    } catch (e) {
      if (e instanceof ApiError && e.status === 401 && !state.token) { location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`); return null; }
      if (e instanceof ApiError && e.status === 403) { showStatus("You do not have access to this image.", true); return null; }
      return {};
    }
    state.image = image || {};
    if (state.image.name) { $("#image-name").textContent = state.image.name; document.title = `${state.image.name} · Microtome`; }
    const status = String(state.image.status || "ready").toLowerCase();
    if (status === "ready" || status === "done" || status === "available") return state.image;
    if (status === "failed" || status === "error") {
      let why = state.image.error || "";
      try {
        const job = items(await api(`images/${encodeURIComponent(state.id)}/jobs?limit=1`, { noRedirect: true }))[0];
        why = why || (job && job.error) || "";
      } catch { /* the reason is a nicety */ }
      showStatus(`This slide could not be converted${why ? `: ${why}` : "."}`, true);
      return null;
    }
    let pct = "";
    if (state.user) {
      try {
        const job = items(await api(`images/${encodeURIComponent(state.id)}/jobs?limit=1`, { noRedirect: true }))[0];
        if (job && job.status === "running") pct = ` (${Math.round(job.progress * 100)}%)`;
      } catch { /* progress is a nicety */ }
    }
    showStatus(`This slide is still being converted${pct}… it opens as soon as it is ready.`);
    await new Promise((r) => setTimeout(r, 2000));
  }
}

async function loadMeta() {
  try {
    const res = await fetch(imageUrl(`metadata${tileQuery()}`), { credentials: "same-origin" });
    if (res.ok) return normalizeMeta(await res.json());
  } catch { /* metadata is optional for viewing */ }
  return normalizeMeta({});
}

function createViewer() {
  const viewer = OpenSeadragon({
    element: $("#osd"),
    prefixUrl: "/static/vendor/openseadragon/images/",
    // Canvas 2D: predictable in headless/software-rendered browsers and
    // lets the annotation overlay share the same coordinate transforms.
    drawer: "canvas",
    showNavigator: true,
    navigatorPosition: "TOP_RIGHT",
    navigatorSizeRatio: 0.18,
    showNavigationControl: false,
    showRotationControl: false,
    animationTime: 0.6,
    blendTime: 0.1,
    immediateRender: true,
    maxZoomPixelRatio: 4,
    visibilityRatio: 0.3,
    crossOriginPolicy: false,
    loadTilesWithAjax: false,
    imageLoaderLimit: 6,
    gestureSettingsMouse: { clickToZoom: false, dblClickToZoom: true },
    keyboardNavEnabled: true,
  });
  viewer.addHandler("tile-loaded", () => {
    // Time from navigation start to the first tile (reported by the browser tests).
    if (!window.microtome.tilesLoaded) window.microtome.firstTileMs = performance.now();
    window.microtome.tilesLoaded += 1;
  });
  viewer.addHandler("tile-load-failed", () => { window.microtome.tilesFailed += 1; });
  return viewer;
}

function openSource(viewer) {
  return new Promise((resolve) => {
    let triedIiif = false;
    const onFail = () => {
      if (!triedIiif) { triedIiif = true; viewer.open(iiifUrl()); return; }
      viewer.removeHandler("open", onOpen);
      viewer.removeHandler("open-failed", onFail);
      showStatus("This image could not be opened (no DZI or IIIF source).", true);
      resolve(false);
    };
    const onOpen = () => {
      viewer.removeHandler("open", onOpen);
      viewer.removeHandler("open-failed", onFail);
      resolve(true);
    };
    viewer.addHandler("open", onOpen);
    viewer.addHandler("open-failed", onFail);
    viewer.open(dziUrl());
  });
}

/** Swap the tile source in place (new render parameters) without a blank frame. */
export function reloadTiles(renderQuery) {
  state.renderQuery = renderQuery;
  const viewer = state.viewer;
  const old = viewer.world.getItemAt(0);
  viewer.addTiledImage({
    tileSource: dziUrl(),
    index: 0,
    success: () => { if (old) viewer.world.removeItem(old); },
    error: () => toast("Could not apply the channel settings", "error"),
  });
}

function updateScalebar() {
  const { viewer, meta } = state;
  const bar = $("#scalebar");
  const item = viewer.world.getItemAt(0);
  if (!item || !meta.pixelUm) { bar.hidden = true; return; }
  const screenPerImagePx = item.viewportToImageZoom(viewer.viewport.getZoom(true));
  const s = niceScale(meta.pixelUm / screenPerImagePx, 150);
  if (!s) return;
  bar.hidden = false;
  bar.querySelector(".bar").style.width = `${s.px.toFixed(1)}px`;
  bar.querySelector(".label").textContent = s.um >= 1000 ? `${s.um / 1000} mm` : `${s.um} µm`;
}

/** The magnification shown now (objective × screen px per level-0 px), or null. */
function currentMagnification() {
  const { viewer, meta } = state;
  const item = viewer.world.getItemAt(0);
  const objective = objectivePower(meta.objective, meta.pixelUm);
  if (!item || !objective) return null;
  return objective * item.viewportToImageZoom(viewer.viewport.getZoom(true));
}

function updateMagnification() {
  const input = $("#mag-input");
  if (!input || document.activeElement === input) return;
  const m = currentMagnification();
  input.value = m ? `${m >= 10 ? m.toFixed(0) : m.toFixed(1)}x` : "";
}

function zoomToMagnification(mag) {
  const { viewer, meta } = state;
  const item = viewer.world.getItemAt(0);
  const objective = objectivePower(meta.objective, meta.pixelUm);
  if (!item || !objective) return;
  viewer.viewport.zoomTo(item.imageToViewportZoom(mag / objective));
}

function setupControls() {
  const { viewer, meta } = state;
  $("#zoom-in").onclick = () => viewer.viewport.zoomBy(1.5);
  $("#zoom-out").onclick = () => viewer.viewport.zoomBy(1 / 1.5);
  $("#zoom-home").onclick = () => viewer.viewport.goHome();
  $("#rotate-left").onclick = () => viewer.viewport.setRotation(viewer.viewport.getRotation() - 90);
  $("#rotate-right").onclick = () => viewer.viewport.setRotation(viewer.viewport.getRotation() + 90);
  $("#fullscreen").onclick = () => {
    if (document.fullscreenElement) document.exitFullscreen();
    else document.querySelector(".viewer-main").requestFullscreen().catch(() => toast("Full screen is not available", "error"));
  };
  $("#copy-link").onclick = copyLink;
  const objective = objectivePower(meta.objective, meta.pixelUm);
  const mags = $("#mag-buttons");
  if (objective) {
    // The current magnification, editable: type 10 (or 10x) and Enter.
    const input = el("input", { id: "mag-input", type: "text", inputmode: "decimal", size: "5", "aria-label": "Magnification", title: `Magnification (m): type a value such as 10 and press Enter; objective ${objective}x${meta.objective ? "" : " (from the pixel size)"}` });
    const commit = () => {
      const v = parseFloat(String(input.value).replace(/[x×]/gi, ""));
      if (Number.isFinite(v) && v > 0) zoomToMagnification(Math.min(v, objective * 4));
      else toast("Type a magnification such as 10 or 2.5", "error");
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") { e.preventDefault(); commit(); input.blur(); }
      else if (e.key === "Escape") input.blur();
    });
    input.addEventListener("blur", () => setTimeout(updateMagnification, 0));
    mags.append(input);
  }
  for (const m of magnifications(objective)) {
    mags.append(el("button", { type: "button", title: `Zoom to ${m}x`, "aria-label": `Zoom to ${m}x magnification`, onclick: () => zoomToMagnification(m) }, `${m}x`));
  }
  // Our shortcuts are handled once, below: OpenSeadragon keeps only the
  // arrow keys (its own w/a/s/d, r, f... would clash with the tool keys).
  viewer.addHandler("canvas-key", (e) => {
    if (!String(e.originalEvent.key).startsWith("Arrow")) e.preventDefaultAction = true;
  });
  document.addEventListener("keydown", (e) => {
    if (isTyping(e) || e.ctrlKey || e.metaKey || e.altKey) return;
    const k = e.key;
    if (k === "f") $("#fullscreen").click();
    else if (k === "r") $("#rotate-right").click();
    else if (k === "R") $("#rotate-left").click();
    else if (k === "0") viewer.viewport.goHome();
    else if (k === "l") copyLink();
    else if (k === "+" || k === "=") viewer.viewport.zoomBy(1.5);
    else if (k === "-") viewer.viewport.zoomBy(1 / 1.5);
    else if (k === "m" && $("#mag-input")) { $("#mag-input").focus(); $("#mag-input").select(); }
    // Arrows pan from anywhere but fields and sliders (the image handles its own).
    else if (k.startsWith("Arrow") && !(e.target instanceof HTMLInputElement) && !e.target.closest("#osd")) {
      const d = { ArrowLeft: [-0.1, 0], ArrowRight: [0.1, 0], ArrowUp: [0, -0.1], ArrowDown: [0, 0.1] }[k];
      if (!d) return;
      const b = viewer.viewport.getBounds();
      viewer.viewport.panBy(new OpenSeadragon.Point(d[0] * b.width, d[1] * b.height));
    }
    else return;
    e.preventDefault();
  });
  viewer.addHandler("update-viewport", () => { updateScalebar(); updateMagnification(); });
  viewer.addHandler("rotate", updateScalebar);
  updateScalebar();
  updateMagnification();
}

async function copyLink() {
  const url = viewUrl(state.viewer);
  history.replaceState(null, "", url);
  try {
    await navigator.clipboard.writeText(url);
    toast("Link to this view copied");
  } catch {
    toast(`Link: ${url}`);
  }
}

function renderInfo() {
  const { meta, image } = state;
  const name = (image && (image.name || image.filename)) || meta.name || state.id;
  document.title = `${name} · Microtome`;
  $("#image-name").textContent = name;
  const rows = [
    ["Size", meta.width ? `${meta.width.toLocaleString()} × ${meta.height.toLocaleString()} px` : ""],
    ["Pixel size", meta.pixelUm ? `${meta.pixelUm.toPrecision(4)} µm` : "unknown"],
    ["Objective", meta.objective ? `${meta.objective}x` : ""],
    ["Levels", meta.levels || ""],
    ["Channels", meta.channels.length > 1 ? meta.channels.length : ""],
    ["Z / T", meta.sizeZ > 1 || meta.sizeT > 1 ? `${meta.sizeZ} / ${meta.sizeT}` : ""],
    ["Format", meta.format || (image && image.format) || ""],
    ["File size", image && image.size_bytes ? formatBytes(image.size_bytes) : ""],
  ];
  $("#image-info").replaceChildren(...rows.filter(([, v]) => v !== "" && v !== undefined)
    .flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  const assoc = $("#assoc");
  for (const label of meta.associated.filter((a) => a === "label" || a === "macro")) {
    const img = el("img", { src: imageUrl(`associated/${label}.png${tileQuery()}`), alt: `${label} image`, loading: "lazy" });
    img.addEventListener("error", () => img.closest("figure").remove());
    assoc.append(el("figure", {}, img, el("figcaption", {}, label)));
  }
}

async function main() {
  const params = new URLSearchParams(location.search);
  const shareToken = params.get("share") || (location.pathname.startsWith("/share/") ? decodeURIComponent(location.pathname.split("/")[2] || "") : null);
  state.id = idFromPath("viewer");
  if (shareToken) {
    const shared = await resolveShare(shareToken);
    if (!shared) { renderTopbar(null); showStatus("This share link is invalid, revoked or has expired.", true); return; }
    state.token = shareToken;
    if (!state.id && !shared.imageId) { renderTopbar(null); return listSharedImages(shared); }
    state.id = state.id || shared.imageId;
  }
  state.user = await currentUser();
  renderTopbar(state.user);
  if (!state.id) { showStatus("No image selected. Pick one from the image list.", true); return; }
  if (typeof OpenSeadragon === "undefined") { showStatus("The viewer library is missing: run the front-end build (make).", true); return; }
  const image = await waitUntilReady();
  if (image === null) return;
  showStatus("");
  state.meta = await loadMeta();
  state.viewer = createViewer();
  renderInfo();
  const ok = await openSource(state.viewer);
  if (!ok) return;
  window.microtome.opened = true;
  shardTiles(state).catch((e) => console.warn("tile hosts", e));  // MICROTOME_TILE_URLS
  document.querySelector(".viewer-tools").hidden = false;
  paramsToView(state.viewer, new URLSearchParams(location.search));
  setupControls();
  setupChannels(state, reloadTiles, { onChange: syncUrl, register: (fn) => registerLinkPart("channels", ["plane", "time", "channels", "colors", "windows"], fn) });
  if (state.meta.kind === "rgb") setupAdjust(state, { onChange: syncUrl, register: (fn) => registerLinkPart("adjust", ["bri", "con", "gam"], fn) });
  if (state.meta.kind === "rgb") setupFilters(state, reloadTiles, { onChange: syncUrl, register: (fn) => registerLinkPart("filters", FILTER_KEYS, fn) });
  setupShortcutHelp();
  // The slide stays usable if the annotation layer cannot start.
  const annotations = setupAnnotations(state, { readOnly: Boolean(state.token) || !state.user })
    .catch((e) => { toast(`Annotations are unavailable: ${e.message}`, "error"); return {}; });
  setupNav(state).catch((e) => console.warn("navigation", e));
  setupAbout(state);
  setupExport(state);
  setupMsi(state);
  setupLive(state);
  if (state.user) setupSimilar(state, { readOnly: Boolean(state.token) }).catch((e) => console.warn("similar", e));
  setupShare(state, await annotations);
  setupAnalyses(state, await annotations).catch((e) => toast(`Analyses are unavailable: ${e.message}`, "error"));
}

function listSharedImages(shared) {
  // A project link: pick one of its images (each opens with the same token).
  const box = $("#viewer-status");
  box.hidden = false;
  box.replaceChildren(el("h2", {}, "Shared images"), el("ul", { class: "shared-images" }, shared.images.map((im) =>
    el("li", {}, el("a", { href: `/viewer/${encodeURIComponent(im.id)}?share=${encodeURIComponent(shared.token)}` }, im.name)))));
}

main().catch((e) => {
  showStatus(`The viewer failed to start: ${e.message}`, true);
  throw e;
});
