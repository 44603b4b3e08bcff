// Brightness, contrast and gamma of the displayed slide, applied in the
// browser (a CSS filter on OpenSeadragon's canvas, gamma through an SVG
// transfer function): instant, no tiles refetched, annotations unaffected.
// The values travel in view links as bri, con and gam.
import { el, toast } from "../ui.js";
import { fetchHistogram, rgbStretch } from "./autocontrast.js";

export const ADJUST_DEFAULTS = { bri: 1, con: 1, gam: 1 };
const RANGE = { bri: [0.2, 3], con: [0.2, 3], gam: [0.2, 3] };

/** Values from link parameters, clamped; missing or bad ones are the defaults. */
export function readAdjust(params) {
  const out = { ...ADJUST_DEFAULTS };
  for (const k of Object.keys(out)) {
    const v = Number(params.get(k));
    if (params.has(k) && Number.isFinite(v)) out[k] = Math.min(RANGE[k][1], Math.max(RANGE[k][0], v));
  }
  return out;
}

/** The link parameters (only those away from the default). */
export function adjustParams(a) {
  const p = {};
  for (const [k, v] of Object.entries(a)) if (Math.abs(v - ADJUST_DEFAULTS[k]) > 1e-6) p[k] = Number(v.toFixed(2));
  return p;
}

/** The CSS filter for these values ("" when there is nothing to do). */
export function cssFilter(a) {
  const parts = [];
  if (a.bri !== 1) parts.push(`brightness(${a.bri})`);
  if (a.con !== 1) parts.push(`contrast(${a.con})`);
  // Display gamma γ: out = in^(1/γ) (γ > 1 brightens the mid-tones).
  if (a.gam !== 1) parts.push("url(#mt-gamma)");
  return parts.join(" ");
}

function gammaFilter() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", "0");
  svg.setAttribute("height", "0");
  svg.setAttribute("aria-hidden", "true");
  svg.style.position = "absolute";
  const filter = document.createElementNS(ns, "filter");
  filter.id = "mt-gamma";
  filter.setAttribute("color-interpolation-filters", "sRGB");
  const transfer = document.createElementNS(ns, "feComponentTransfer");
  const funcs = ["feFuncR", "feFuncG", "feFuncB"].map((n) => {
    const f = document.createElementNS(ns, n);
    f.setAttribute("type", "gamma");
    f.setAttribute("amplitude", "1");
    f.setAttribute("offset", "0");
    transfer.append(f);
    return f;
  });
  filter.append(transfer);
  svg.append(filter);
  document.body.append(svg);
  return (g) => funcs.forEach((f) => f.setAttribute("exponent", String(1 / g)));
}

/** The "Display" panel: three sliders and a reset; `onChange` after each change. */
export function setupAdjust(state, { onChange = () => {}, register = () => {} } = {}) {
  const a = readAdjust(new URLSearchParams(location.search));
  const setGamma = gammaFilter();
  const target = () => state.viewer.drawer && state.viewer.drawer.canvas;
  const apply = () => {
    setGamma(a.gam);
    const c = target();
    if (c) c.style.filter = cssFilter(a);
  };
  const rows = [["bri", "Brightness"], ["con", "Contrast"], ["gam", "Gamma"]];
  const inputs = {};
  // Folded away unless a link brought adjustments: most views need none.
  const changed = Object.keys(adjustParams(a)).length > 0;
  const box = el("details", { id: "adjust-panel", open: changed }, el("summary", {}, el("h2", {}, "Display")));
  for (const [k, label] of rows) {
    const out = el("output", { id: `adjust-${k}-value` }, a[k].toFixed(2));
    const input = el("input", { type: "range", id: `adjust-${k}`, min: RANGE[k][0], max: RANGE[k][1], step: "0.05", value: String(a[k]), "aria-label": label });
    input.addEventListener("input", () => {
      a[k] = Number(input.value);
      out.textContent = a[k].toFixed(2);
      apply();
      onChange();
    });
    inputs[k] = { input, out };
    box.append(el("label", { for: `adjust-${k}`, class: "adjust-row" }, `${label} `, out), input);
  }
  box.append(el("button", { type: "button", id: "adjust-reset", onclick: () => {
    Object.assign(a, ADJUST_DEFAULTS);
    for (const [k, { input, out }] of Object.entries(inputs)) { input.value = String(a[k]); out.textContent = a[k].toFixed(2); }
    apply();
    onChange();
  } }, "Reset"));
  // Auto-contrast from the server's stored histogram (autocontrast.js).
  box.append(el("button", { type: "button", id: "adjust-auto", onclick: async () => {
    try {
      Object.assign(a, rgbStretch(await fetchHistogram(`/images/${encodeURIComponent(state.id)}/histogram`), RANGE.bri));
    } catch { toast("Could not read the image's histogram", "error"); return; }
    for (const [k, { input, out }] of Object.entries(inputs)) { input.value = String(a[k]); out.textContent = a[k].toFixed(2); }
    apply();
    onChange();
  } }, "Auto"));
  document.querySelector("#info-panel").after(box);
  register(() => adjustParams(a));
  apply();
  return a;
}
