// Results of analyses as layers of the annotation canvas: each analysis'
// annotations (producer "analysis:<id>/<attempt>") can be hidden or shown as
// a whole. The annotation layer keeps its own visibility test (terms); this
// wraps it instead of editing it, so a generic layers panel can do the same.

/** The analysis id an annotation came from, or null. */
export function analysisOf(feature) {
  const p = (feature && feature.properties) || {};
  if (p.analysis_id) return Number(p.analysis_id);
  const m = /^analysis:(\d+)\//.exec(p.producer || "");
  return m ? Number(m[1]) : null;
}

export class ResultLayers {
  constructor(layer) {
    this.layer = layer;
    this.hidden = new Set();
    const base = layer.visible.bind(layer);
    layer.visible = (f) => base(f) && !this.hidden.has(analysisOf(f));
  }

  isShown(id) { return !this.hidden.has(id); }

  setShown(id, shown) {
    if (shown) this.hidden.delete(id); else this.hidden.add(id);
    this.layer.invalidate();
  }

  /** New or deleted results: ask the server again for the view. */
  reload() {
    this.layer.writes += 1;
    this.layer.refresh(true);
  }

  /** How many of the shapes now loaded came from analysis `id`. */
  loadedCount(id) {
    let n = 0;
    for (const f of this.layer.allFeatures()) if (analysisOf(f) === id) n += 1;
    return n;
  }
}
