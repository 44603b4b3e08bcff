// Server-side filters of RGB slides (colour deconvolution, threshold, edges):
// the tile server renders them (tileserver/filters.py), so the viewer only
// changes the tile URLs' query.  The choices travel in view links as
// stain, threshold and edge, the tile server's own parameter names.
import { el } from "../ui.js";

export const FILTER_KEYS = ["stain", "threshold", "edge"];

/** Valid filter choices of link parameters (bad ones dropped). */
export function readFilters(params) {
  const f = {};
  const stain = (params.get("stain") || "").toUpperCase();
  if (["H", "E", "DAB"].includes(stain)) f.stain = stain;
  const t = params.get("threshold") || "";
  if (t.toLowerCase() === "otsu" || (/^\d{1,3}$/.test(t) && Number(t) <= 255)) f.threshold = t.toLowerCase();
  if ((params.get("edge") || "").toLowerCase() === "sobel") f.edge = "sobel";
  return f;
}

/** The tile query for these choices. */
export function filterQuery(f) {
  const q = new URLSearchParams();
  for (const k of FILTER_KEYS) if (f[k]) q.set(k, f[k]);
  return q.toString();
}

export function setupFilters(state, reloadTiles, { onChange = () => {}, register = () => {} } = {}) {
  const f = readFilters(new URLSearchParams(location.search));
  const stain = el("select", { id: "filter-stain", "aria-label": "Stain" },
    ...[["", "All stains"], ["H", "Haematoxylin"], ["E", "Eosin"], ["DAB", "DAB"]]
      .map(([v, t]) => el("option", { value: v, selected: (f.stain || "") === v }, t)));
  const mode = el("select", { id: "filter-threshold", "aria-label": "Threshold" },
    ...[["", "No threshold"], ["otsu", "Otsu"], ["value", "Grey level"]]
      .map(([v, t]) => el("option", { value: v }, t)));
  const level = el("input", { type: "number", id: "filter-level", min: "0", max: "255", step: "1", value: "128", "aria-label": "Grey level", hidden: true });
  mode.value = f.threshold === "otsu" ? "otsu" : (f.threshold ? "value" : "");
  if (mode.value === "value") { level.value = f.threshold; level.hidden = false; }
  const edge = el("input", { type: "checkbox", id: "filter-edge", checked: !!f.edge });
  const apply = () => {
    f.stain = stain.value || undefined;
    level.hidden = mode.value !== "value";
    const v = Math.min(255, Math.max(0, Math.round(Number(level.value) || 0)));
    f.threshold = mode.value === "otsu" ? "otsu" : (mode.value === "value" ? String(v) : undefined);
    f.edge = edge.checked ? "sobel" : undefined;
    reloadTiles(filterQuery(f));
    onChange();
  };
  for (const input of [stain, mode, level, edge]) input.addEventListener("change", apply);
  const on = Object.values(f).some(Boolean);
  const box = el("details", { id: "filter-panel", open: on },
    el("summary", {}, el("h2", {}, "Filters")),
    el("label", { for: "filter-stain", class: "adjust-row" }, "Colour deconvolution"), stain,
    el("label", { for: "filter-threshold", class: "adjust-row" }, "Threshold"), mode, level,
    el("label", { for: "filter-edge", class: "adjust-row" }, edge, " Edges (Sobel)"));
  (document.querySelector("#adjust-panel") || document.querySelector("#info-panel")).after(box);
  register(() => Object.fromEntries(FILTER_KEYS.filter((k) => f[k]).map((k) => [k, f[k]])));
  if (on) reloadTiles(filterQuery(f));
  return f;
}
