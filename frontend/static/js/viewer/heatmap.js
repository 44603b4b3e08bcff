// "Find similar regions on this slide": the slide-search scores drawn as a
// heat-map layer over the slide (an OpenSeadragon image item above it) and the
// best windows as candidates, each accepted as an annotation in one click.
import { api } from "../api.js";
import { el, toast } from "../ui.js";

/** RGBA of a normalised score t in [0, 1]: transparent blue → opaque yellow-red. */
function ramp(t) {
  const r = Math.round(255 * Math.min(1, 2 * t));
  const g = Math.round(255 * Math.max(0, 1 - Math.abs(2 * t - 1.2)));
  const b = Math.round(255 * Math.max(0, 1 - 2 * t));
  return [r, g, b, Math.round(200 * t)];
}

/** A data URL of the score grid, one pixel per window, contrast from the 10th percentile to the best. */
export function heatmapImage(result) {
  const { cols, rows } = result.grid;
  const sorted = [...result.scores].sort((a, b) => a - b);
  const lo = sorted[Math.floor(sorted.length * 0.1)];
  const hi = sorted[sorted.length - 1];
  const canvas = document.createElement("canvas");
  canvas.width = cols;
  canvas.height = rows;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(cols, rows);
  result.scores.forEach((s, i) => {
    const t = hi > lo ? Math.max(0, Math.min(1, (s - lo) / (hi - lo))) : 0;
    img.data.set(ramp(t), i * 4);
  });
  ctx.putImageData(img, 0, 0);
  return canvas.toDataURL("image/png");
}

export class SlideSearch {
  constructor(state, { readOnly = false } = {}) {
    this.state = state;
    this.readOnly = readOnly;
    this.item = null;
  }

  /** Remove the heat-map layer. */
  hide() {
    if (this.item) { this.state.viewer.world.removeItem(this.item); this.item = null; }
  }

  /** Each cell covers the middle of its window (a window's centre ± half a step). */
  show(result) {
    this.hide();
    const { viewer } = this.state;
    const slide = viewer.world.getItemAt(0);
    const width = slide.getContentSize().x;
    const { window: win, step, cols } = result.grid;
    const offset = (win - step) / 2;
    viewer.addTiledImage({
      tileSource: { type: "image", url: heatmapImage(result), buildPyramid: false },
      x: offset / width, y: offset / width, width: (cols * step) / width,
      opacity: 0.55,
      success: (e) => { this.item = e.item; window.microtome.heatmap = e.item; },
      error: () => toast("Could not draw the heat map", "error"),
    });
  }

  /** Search the open slide for regions like annotation `id`; renders into `box`. */
  async run(id, box) {
    box.replaceChildren(el("p", { class: "muted" }, "Scoring the whole slide… (up to half a minute)"));
    let result;
    try {
      result = await api("retrieval/slide-search", { method: "POST", body: { annotation_id: id, target_image_id: Number(this.state.id), top: 5 }, noRedirect: true });
    } catch (e) {
      box.replaceChildren(el("p", { class: "muted" }, `Slide search failed: ${e.message}`));
      return;
    }
    this.show(result);
    const { viewer } = this.state;
    const slide = viewer.world.getItemAt(0);
    const edits = window.microtome.edits;
    const candidates = result.top.map((c, i) => {
      const ring = c.geometry.coordinates[0];
      const [x0, y0] = ring[0];
      const [x1, y1] = ring[2];
      const zoom = () => viewer.viewport.fitBounds(slide.imageToViewportRectangle(x0, y0, x1 - x0, y1 - y0).times(1), false);
      const accept = this.readOnly || !edits ? null : el("button", { type: "button", class: "similar-accept", title: "Save this region as an annotation",
        onclick: (e) => { edits.create(c.geometry); e.target.disabled = true; e.target.textContent = "Added"; } }, "Accept");
      return el("li", { class: "row" },
        el("button", { type: "button", class: "link", onclick: zoom, title: "Show this region" }, `#${i + 1}`),
        el("span", { class: "muted" }, `score ${c.score.toFixed(3)}`), accept);
    });
    box.replaceChildren(
      el("div", { class: "row", style: "justify-content:space-between" }, el("strong", {}, "On this slide"),
        el("button", { type: "button", id: "heatmap-hide", onclick: () => { this.hide(); box.replaceChildren(); } }, "Hide heat map")),
      el("ul", { class: "similar-candidates", id: "similar-candidates", "aria-label": "Candidate regions" }, candidates));
  }
}
