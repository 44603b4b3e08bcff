// Colouring an analysis' result layer by one of its measurements (nucleus
// area, stain intensity, H-score grade, ...): the values come from
// GET /api/analyses/{id}/values, each result gets the colour of its value's
// step on a perceptual ramp from the run's minimum to its maximum, and a
// legend says which colour means what. Term colours come back with "Terms".
import { api } from "../../api.js";
import { el } from "../../ui.js";
import { analysisOf } from "./results.js";

/** Eight steps of viridis, low → high. */
export const RAMP = ["#440154", "#46327e", "#365c8d", "#277f8e", "#1fa187", "#4ac16d", "#a0da39", "#fde725"];

/** Legend entries [{color, label}] and a value → colour function for `values`. */
export function scale(values, min, max) {
  const distinct = [...new Set(values)].sort((a, b) => a - b);
  if (distinct.length <= RAMP.length && distinct.every(Number.isInteger)) {
    // Few whole values (grades, counts): one colour each, spread over the ramp.
    const at = (i) => RAMP[distinct.length === 1 ? RAMP.length - 1 : Math.round(i * (RAMP.length - 1) / (distinct.length - 1))];
    const index = new Map(distinct.map((v, i) => [v, i]));
    return { colorOf: (v) => at(index.get(v)), legend: distinct.map((v, i) => ({ color: at(i), label: String(v) })) };
  }
  const span = max - min;
  const step = (v) => (span > 0 ? Math.min(RAMP.length - 1, Math.floor(((v - min) / span) * RAMP.length)) : RAMP.length - 1);
  const legend = RAMP.map((color, i) => ({
    color, label: `${fmt(min + (span * i) / RAMP.length)} – ${fmt(min + (span * (i + 1)) / RAMP.length)}`,
  }));
  return { colorOf: (v) => RAMP[step(v)], legend };
}

function fmt(v) {
  return Math.abs(v) >= 100 || Number.isInteger(v) ? v.toFixed(0) : v.toPrecision(3);
}

export class MeasureColours {
  constructor(layer) {
    this.layer = layer;
    this.by = new Map(); // analysis id → {key, colours: Map(annotation id → colour), legend}
    layer.measureColor = (f) => {
      const c = this.by.get(analysisOf(f));
      return (c && c.colours.get(f.id)) || null;
    };
  }

  keyOf(analysisId) { const c = this.by.get(analysisId); return c ? c.key : ""; }

  /** Colour analysis `analysisId` by measurement `key` ("" = back to term colours). */
  async colourBy(analysisId, key) {
    if (!key) {
      this.by.delete(analysisId);
      this.layer.invalidate();
      return null;
    }
    const r = await api(`analyses/${analysisId}/values?measurement=${encodeURIComponent(key)}`, { noRedirect: true });
    const s = scale(r.values, r.min, r.max);
    const colours = new Map(r.ids.map((id, i) => [id, s.colorOf(r.values[i])]));
    const info = { key, colours, legend: s.legend };
    this.by.set(analysisId, info);
    this.layer.invalidate();
    return info;
  }

  /** The legend of analysis `analysisId`'s colouring, or null. */
  legend(analysisId) {
    const c = this.by.get(analysisId);
    if (!c) return null;
    return el("ul", { class: "measure-legend", "aria-label": `Colours of ${c.key}` },
      ...c.legend.map((e) => el("li", { style: "display:flex;gap:.4rem;align-items:center" },
        el("span", { class: "swatch", style: `display:inline-block;width:12px;height:12px;border-radius:2px;background:${e.color}` }),
        el("span", {}, e.label))));
  }
}
