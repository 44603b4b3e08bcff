// Channel panel for multi-channel (fluorescence) images: toggle, colour,
// window sliders, z/t sliders.  Changes are turned into the tile server's
// rendering query parameters (see tileserver/render.py) and the tiles are
// reloaded, debounced so dragging a slider does not flood the server.
import { el, toast } from "../ui.js";
import { channelWindows, fetchHistogram } from "./autocontrast.js";

/**
 * The tile-server query string for these channel settings and plane.
 * `plane` is 0-based as in URLs; z and t are sent whenever the image has
 * more than one (plane 0 must be asked for: the server's default is the
 * middle plane).
 */
export function renderQuery(channels, plane, sizes) {
  const q = new URLSearchParams();
  if (channels.length) {
    const active = channels.filter((c) => c.active);
    q.set("channels", active.map((c) => c.index).join(","));
    q.set("colors", active.map((c) => c.color.replace("#", "")).join(","));
    q.set("windows", active.map((c) => `${c.start}:${c.end}`).join(","));
  }
  if (sizes.z > 1) q.set("z", String(plane.z));
  if (sizes.t > 1) q.set("t", String(plane.t));
  return q.toString();
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

/**
 * Channel and plane choices of a view link (0-based `plane` and `time`;
 * `channels`, `colors`, `windows` as the tile server takes them), applied
 * to `chans` and `plane` in place.  Bad values are ignored.
 */
export function readLinkParams(params, chans, plane, sizes) {
  const int = (k, size) => {
    const v = Number(params.get(k));
    return params.has(k) && Number.isInteger(v) && v >= 0 && v < size ? v : null;
  };
  const z = int("plane", sizes.z);
  const t = int("time", sizes.t);
  if (z !== null) plane.z = z;
  if (t !== null) plane.t = t;
  if (!chans.length || !params.has("channels")) return;
  const active = params.get("channels").split(",").filter((x) => x !== "").map(Number);
  if (active.some((i) => !Number.isInteger(i) || !chans[i])) return;
  const colors = (params.get("colors") || "").split(",");
  const windows = (params.get("windows") || "").split(",");
  for (const c of chans) c.active = false;
  active.forEach((i, k) => {
    const c = chans[i];
    c.active = true;
    if (/^[0-9a-fA-F]{6}$/.test(colors[k] || "")) c.color = `#${colors[k].toLowerCase()}`;
    const [a, b] = (windows[k] || "").split(":").map(Number);
    if (Number.isFinite(a) && Number.isFinite(b) && a < b) { c.start = a; c.end = b; }
  });
}

/** The link parameters of these choices (what readLinkParams reads back). */
export function linkParams(chans, plane, sizes) {
  const p = {};
  if (sizes.z > 1) p.plane = plane.z;
  if (sizes.t > 1) p.time = plane.t;
  const q = new URLSearchParams(renderQuery(chans, plane, { z: 1, t: 1 }));
  for (const k of ["channels", "colors", "windows"]) if (q.has(k)) p[k] = q.get(k);
  return p;
}

export function setupChannels(state, reloadTiles, { onChange = () => {}, register = () => {} } = {}) {
  const { meta } = state;
  // RGB brightfield is rendered as stored; the panel is for "nd" images.
  const multi = meta.kind !== "rgb" && meta.channels.length > 0;
  if (!multi && meta.sizeZ <= 1 && meta.sizeT <= 1) return;
  document.querySelector("#channel-panel").hidden = false;
  const chans = meta.channels.map((c) => ({ ...c }));
  // The tile server shows the middle z plane by default.
  const plane = { z: Math.floor(meta.sizeZ / 2), t: 0 };
  const sizes = { z: meta.sizeZ, t: meta.sizeT };
  const initial = renderQuery(chans, plane, sizes);
  readLinkParams(new URLSearchParams(location.search), multi ? chans : [], plane, sizes);
  register(() => linkParams(multi ? chans : [], plane, sizes));
  const apply = debounce(() => { reloadTiles(renderQuery(chans, plane, sizes)); onChange(); }, 250);
  // A link with other choices than the defaults: show them at once.
  if (renderQuery(chans, plane, sizes) !== initial) reloadTiles(renderQuery(chans, plane, sizes));
  const box = document.querySelector("#channels");
  const step = meta.dtype.includes("float") ? "any" : "1";
  for (const c of (multi ? chans : [])) {
    const id = `ch-${c.index}`;
    const onoff = el("input", { type: "checkbox", id, checked: c.active, "aria-label": `Show ${c.label}` });
    onoff.addEventListener("change", () => {
      // At least one channel stays shown: an empty choice means nothing to render
      // (the tile server refuses `channels=`), not "the defaults".
      if (!onoff.checked && chans.filter((x) => x.active).length <= 1) {
        onoff.checked = true;
        onoff.title = "At least one channel stays shown";
        return;
      }
      c.active = onoff.checked;
      apply();
    });
    const colour = el("input", { type: "color", value: c.color, "aria-label": `Colour of ${c.label}` });
    colour.addEventListener("input", () => { c.color = colour.value; apply(); });
    const lo = el("input", { type: "range", min: c.min, max: c.max, step, value: c.start, "aria-label": `${c.label} window start` });
    const hi = el("input", { type: "range", min: c.min, max: c.max, step, value: c.end, "aria-label": `${c.label} window end` });
    const readout = el("span", { class: "muted" }, `${c.start}–${c.end}`);
    const onWindow = () => {
      c.start = Math.min(Number(lo.value), Number(hi.value));
      c.end = Math.max(Number(lo.value), Number(hi.value));
      readout.textContent = `${c.start}–${c.end}`;
      apply();
    };
    lo.addEventListener("input", onWindow);
    hi.addEventListener("input", onWindow);
    c.setWindow = (a, b) => { lo.value = String(a); hi.value = String(b); onWindow(); };
    box.append(el("div", { class: "channel" },
      onoff, el("label", { for: id, style: "margin:0;color:inherit" }, c.label), colour,
      el("div", { class: "window" }, lo, hi), readout));
  }
  if (multi) {
    // Auto-contrast: every channel's window from the stored histogram (0.5-99.5 %).
    box.append(el("button", { type: "button", id: "channels-auto", onclick: async () => {
      let hist;
      try { hist = await fetchHistogram(`/images/${encodeURIComponent(state.id)}/histogram`); }
      catch { toast("Could not read the image's histogram", "error"); return; }
      channelWindows(hist).forEach(([a, b], i) => chans[i] && chans[i].setWindow(a, b));
    } }, "Auto contrast"));
  }
  // Planes and time points are labelled from 1 as in OMERO and QuPath; the
  // slider value and the URLs stay 0-based.
  const planes = document.querySelector("#planes");
  const names = { z: "Z plane", t: "Time point" };
  for (const [axis, size] of [["z", meta.sizeZ], ["t", meta.sizeT]]) {
    if (size <= 1) continue;
    const label = (i) => `${i + 1} of ${size}`;
    const out = el("output", { id: `plane-${axis}-label` }, label(plane[axis]));
    const slider = el("input", { type: "range", min: 0, max: size - 1, step: 1, value: plane[axis], id: `plane-${axis}`, "aria-label": names[axis], title: `${names[axis]} (0-based in URLs: ${axis}=${plane[axis]})` });
    slider.addEventListener("input", () => {
      plane[axis] = Number(slider.value);
      out.textContent = label(plane[axis]);
      slider.title = `${names[axis]} (0-based in URLs: ${axis}=${plane[axis]})`;
      apply();
    });
    planes.append(el("label", { for: `plane-${axis}` }, `${names[axis]} `, out), slider);
  }
}
