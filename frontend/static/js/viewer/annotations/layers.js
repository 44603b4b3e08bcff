// The layers panel: every author's annotations and every analysis run's
// results are a layer (GET …/annotations/layers) that can be shown, hidden
// and coloured; filters by review status, date and a numeric property range.
// What is shown is asked of the server with the same filters (viewport and
// per-term counts take `layers`, `status`, `from`, `to`, `prop`, `prop_min`,
// `prop_max`), and hidden at once here while the next answer comes.  Colours
// picked here are saved per user per project (/api/projects/{id}/layer-colors)
// when a user is logged in with a project, so a reload keeps them.
import { api } from "../../api.js";
import { el, toast } from "../../ui.js";

/** The layer key of a viewport feature (as the server names layers). */
export function layerKey(f) {
  const p = f.properties || {};
  if (p.analysis_id) return `analysis:${p.analysis_id}`;
  return `user:${p.user_id ?? 0}`;
}

export class LayersPanel {
  /** @param ctx {imageId, projectId, layer, onChange(), saveColors: bool} */
  constructor(ctx) {
    this.ctx = ctx;
    this.items = [];
    this.hidden = new Set();
    this.colors = new Map();
    this.filter = { status: "", from: "", to: "", prop: "", min: "", max: "" };
    this.list = el("ul", { class: "layer-list", id: "layer-list", "aria-label": "Layers" });
    this.box = el("details", { id: "layers", class: "layers-panel" },
      el("summary", {}, "Layers and filters"), this.list, this.filters());
    ctx.layer.layerVisible = (f) => f.id < 0 || !this.hidden.has(layerKey(f));
    ctx.layer.layerColor = (f) => this.colors.get(layerKey(f)) || null;
  }

  colorsUrl() {
    return this.ctx.saveColors && this.ctx.projectId ? `projects/${encodeURIComponent(this.ctx.projectId)}/layer-colors` : null;
  }

  /** The saved colours (once per page): drawn with them from the first frame on. */
  async loadColors() {
    const url = this.colorsUrl();
    if (!url || this.colorsLoaded) return;
    this.colorsLoaded = true;
    try {
      const saved = (await api(url, { noRedirect: true })).colors || {};
      for (const [k, c] of Object.entries(saved)) if (!this.colors.has(k)) this.colors.set(k, c);
      this.ctx.layer.invalidate();
    } catch { /* unsaved colours still work for this page */ }
  }

  async saveColor(key, color) {
    const url = this.colorsUrl();
    if (!url) return;
    try { await api(url, { method: "PATCH", body: { [key]: color }, noRedirect: true }); } catch (e) { toast(`The colour was not saved: ${e.message}`, "error"); }
  }

  async load() {
    await this.loadColors();
    try {
      const q = this.ctx.projectId ? `project=${encodeURIComponent(this.ctx.projectId)}` : "";
      this.items = (await api(`images/${this.ctx.imageId}/annotations/layers?${q}`, { noRedirect: true })).items || [];
    } catch { this.items = []; }
    this.render();
  }

  /** Query parameters (leading &) of what is shown, for the viewport and the counts. */
  query() {
    const q = new URLSearchParams();
    if (this.hidden.size) {
      const shown = this.items.map((l) => l.key).filter((k) => !this.hidden.has(k));
      q.set("layers", shown.join(","));
    }
    const f = this.filter;
    if (f.status) q.set("status", f.status);
    if (f.from) q.set("from", f.from);
    if (f.to) q.set("to", f.to);
    if (f.prop) {
      q.set("prop", f.prop);
      if (f.min !== "") q.set("prop_min", f.min);
      if (f.max !== "") q.set("prop_max", f.max);
    }
    const s = q.toString();
    return s ? `&${s}` : "";
  }

  changed() {
    this.ctx.layer.invalidate();
    this.ctx.onChange();
  }

  render() {
    this.list.replaceChildren(...this.items.map((l) => {
      const vis = el("input", { type: "checkbox", checked: !this.hidden.has(l.key), "aria-label": `Show ${l.name}` });
      vis.addEventListener("change", () => { if (vis.checked) this.hidden.delete(l.key); else this.hidden.add(l.key); this.changed(); });
      const color = el("input", { type: "color", value: this.colors.get(l.key) || "#3b82f6", "aria-label": `Colour of ${l.name}`, title: "Colour this layer (instead of its terms' colours)" });
      color.addEventListener("input", () => { this.colors.set(l.key, color.value); this.ctx.layer.invalidate(); });
      const reset = el("button", { type: "button", class: "link", title: "Back to the terms' colours", "aria-label": `Term colours for ${l.name}`, hidden: !this.colors.has(l.key), onclick: () => { this.colors.delete(l.key); this.render(); this.ctx.layer.invalidate(); this.saveColor(l.key, null); } }, "↺");
      color.addEventListener("change", () => { this.colors.set(l.key, color.value); this.render(); this.saveColor(l.key, color.value); });
      return el("li", { dataset: { layer: l.key } }, vis, color,
        el("span", { style: "flex:1" }, l.kind === "analysis" ? `⚙ ${l.name}` : l.name, el("span", { class: "muted" }, ` ${l.count}`)), reset);
    }));
  }

  filters() {
    const input = (key, attrs) => {
      const i = el("input", { ...attrs, value: this.filter[key] });
      i.addEventListener("change", () => { this.filter[key] = i.value.trim(); this.changed(); });
      return i;
    };
    const status = el("select", { id: "layer-status", "aria-label": "Show by review status" },
      [["", "Any review status"], ["pending", "Pending (review mode)"], ["accepted", "Accepted (reviewed layer)"], ["rejected", "Rejected"]].map(([v, t]) => el("option", { value: v }, t)));
    status.addEventListener("change", () => { this.filter.status = status.value; status.blur(); this.changed(); });
    return el("div", { class: "layer-filters" },
      status,
      el("div", { class: "row" }, el("label", { for: "layer-from", style: "margin:0" }, "From"), input("from", { id: "layer-from", type: "date" }),
        el("label", { for: "layer-to", style: "margin:0" }, "to"), input("to", { id: "layer-to", type: "date" })),
      el("div", { class: "row" },
        input("prop", { id: "layer-prop", placeholder: "Property (e.g. measurements.area)", "aria-label": "Property", style: "flex:1;min-width:0" })),
      el("div", { class: "row" },
        input("min", { id: "layer-prop-min", type: "number", step: "any", placeholder: "min", "aria-label": "Property minimum", style: "width:5rem" }),
        input("max", { id: "layer-prop-max", type: "number", step: "any", placeholder: "max", "aria-label": "Property maximum", style: "width:5rem" })));
  }
}
