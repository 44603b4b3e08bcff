// "Similar" panel: when an annotation is selected (or just drawn and saved),
// the most similar annotated regions the user may see (thumbnail, image,
// term, score; a click opens that slide at that place) and the suggested
// terms (one click puts it on the selection).  Talks to /api/retrieval/*;
// the selection arrives as the "microtome:annotation-selected" event that
// annotations/panel.js sends, a new drawing as "microtome:annotation-created"
// (annotations/edits.js).
import { api, ApiError } from "../api.js";
import { el, toast } from "../ui.js";
import { bboxOf } from "./annotations/geom.js";
import { SlideSearch } from "./heatmap.js";

const K = 8;
/** Screen pixels the opened region spans (the link's zoom). */
const OPEN_SPAN_PX = 500;

export const retrievalApi = {
  status: () => api("retrieval/status", { noRedirect: true }),
  similar: (body, signal) => api("retrieval/similar", { method: "POST", body, noRedirect: true, signal }),
  suggest: (body, signal) => api("retrieval/suggest-term", { method: "POST", body, noRedirect: true, signal }),
};

/** The viewer URL that shows `item` (a neighbour) centred and filling the view. */
export function openUrl(item) {
  const [x0, y0, x1, y1] = item.bbox;
  const span = Math.max(x1 - x0, y1 - y0, 1);
  const q = new URLSearchParams({ x: String(Math.round((x0 + x1) / 2)), y: String(Math.round((y0 + y1) / 2)), z: (OPEN_SPAN_PX / span).toPrecision(3) });
  if (item.project_id) q.set("project", String(item.project_id));
  return `/viewer/${encodeURIComponent(item.image_id)}?${q}`;
}

export async function setupSimilar(state, { readOnly = false } = {}) {
  document.head.append(el("link", { rel: "stylesheet", href: "/static/css/similar.css" }));
  const section = el("section", { id: "similar-panel", "aria-label": "Similar regions" });
  document.querySelector(".sidepanel").append(section);
  let status;
  try { status = await retrievalApi.status(); } catch { status = { enabled: false, message: "retrieval is unavailable" }; }
  if (!status.enabled) {
    section.replaceChildren(el("h2", {}, "Similar"), el("p", { class: "muted", id: "similar-off" }, `Unavailable: ${status.message}`));
    return;
  }
  const scope = el("select", { id: "similar-scope", "aria-label": "Where to look for similar regions" },
    el("option", { value: "all" }, "All slides"), el("option", { value: "project" }, "This project"), el("option", { value: "image" }, "This slide"));
  const body = el("div", { id: "similar-body", "aria-live": "polite" },
    el("p", { class: "muted" }, "Select or draw an annotation to see similar regions."));
  const slideBox = el("div", { id: "similar-slide", "aria-live": "polite" });
  const slideSearch = new SlideSearch(state, { readOnly });
  section.replaceChildren(el("h2", { class: "row", style: "justify-content:space-between" }, "Similar", scope), body, slideBox);

  /** Why a region cannot be compared (the server's limits, checked here so that no
   *  request is sent for a point or a speck), or null. */
  function undescribable(geometry) {
    if (!geometry || !/Polygon$/.test(geometry.type)) return "Points and lines have no region to compare.";
    const { um_per_px: um, min_side: lo, max_side: hi } = status.limits;
    const scale = (state.meta && state.meta.pixelUm ? state.meta.pixelUm : um) / um;
    const [x0, y0, x1, y1] = bboxOf(geometry);
    const short = Math.min(x1 - x0, y1 - y0) * scale;
    const long = Math.max(x1 - x0, y1 - y0) * scale;
    if (short < lo) return `Too small to compare: regions need at least ${lo * um} µm a side.`;
    if (long > hi) return `Too large to compare: regions may span at most ${hi * um} µm.`;
    return null;
  }

  let current = null;
  let inflight = null;
  // The panel re-renders whenever the selection is redrawn (a pan reloads the
  // features): the same annotation, geometry and scope are not searched again.
  let last = { id: null, geometry: null, scope: null, sim: null, sug: null };
  async function show(id) {
    const feature = id !== null && window.microtome.annotations ? window.microtome.annotations.get(id) : null;
    const geometry = feature ? feature.geometry : null;
    if (id !== null && id === last.id && geometry === last.geometry && scope.value === last.scope) {
      if (last.sim) render(id, last.sim, last.sug);
      return;
    }
    if (inflight) inflight.abort();
    current = id;
    last = { id, geometry, scope: scope.value, sim: null, sug: null };
    if (id === null || id < 0) {
      body.replaceChildren(el("p", { class: "muted" }, id === null ? "Select or draw an annotation to see similar regions." : "Saving…"));
      return;
    }
    const why = feature ? undescribable(feature.geometry) : null;
    if (why) { body.replaceChildren(el("p", { class: "muted", id: "similar-error" }, why)); return; }
    inflight = new AbortController();
    const { signal } = inflight;
    body.replaceChildren(el("p", { class: "muted" }, "Looking for similar regions…"));
    try {
      const [sim, sug] = await Promise.all([
        retrievalApi.similar({ annotation_id: id, k: K, scope: scope.value }, signal),
        retrievalApi.suggest({ annotation_id: id, scope: scope.value }, signal),
      ]);
      if (current === id) { last.sim = sim; last.sug = sug; render(id, sim, sug); }
    } catch (e) {
      if (signal.aborted || current !== id) return;
      last = { id: null, geometry: null, scope: null, sim: null, sug: null };
      const why = e instanceof ApiError && e.status === 400 ? e.message : `could not search: ${e.message}`;
      body.replaceChildren(el("p", { class: "muted", id: "similar-error" }, why));
    }
  }

  async function apply(id, t) {
    try {
      await window.microtome.edits.setTerms(id, [t.term_id]);
    } catch (e) { toast(`Could not apply the term: ${e.message}`, "error"); return; }
    toast(`Term ${t.name} applied`);
    if (current === id && last.sim) render(id, last.sim, last.sug);
  }

  function render(id, sim, sug) {
    const edits = window.microtome.edits;
    const f = window.microtome.annotations && window.microtome.annotations.get(id);
    const canApply = !readOnly && edits && f && window.microtome.annotations.canEdit(f);
    const best = (sug.terms || []).slice(0, 3);
    const suggestions = best.length ? el("ul", { class: "similar-terms", id: "similar-terms", "aria-label": "Suggested terms" }, best.map((t) => {
      const has = f && f.terms.includes(t.term_id);
      const applyButton = canApply && t.applicable && !has
        ? el("button", { type: "button", class: "similar-apply", title: `Put ${t.name} on the selected annotation`, onclick: () => apply(id, t) }, "Apply")
        : null;
      return el("li", { class: "row" },
        el("span", { class: "swatch", style: `background:${t.color || "#888"}` }),
        el("span", { class: "similar-term-name" }, t.name),
        el("span", { class: "muted" }, `${Math.round(t.score * 100)}%`),
        has ? el("span", { class: "muted" }, "(has it)") : null, applyButton);
    })) : el("p", { class: "muted" }, "No term to suggest (the neighbours have none).");
    const list = sim.items.length ? el("ul", { class: "similar-list", id: "similar-list" }, sim.items.map((it) => el("li", {},
      el("a", { href: openUrl(it), title: `Open ${it.image_name} at this region`, class: "similar-item" },
        el("img", { src: it.crop_url, alt: `Region of ${it.image_name}`, loading: "lazy", width: "72", height: "72" }),
        el("span", { class: "similar-meta" },
          el("span", { class: "similar-image" }, it.image_name),
          el("span", { class: "similar-term" }, it.terms.map((t) => t.name).join(", ") || "no term"),
          el("span", { class: "muted similar-score" }, `score ${it.score.toFixed(3)}`))))))
      : el("p", { class: "muted" }, "Nothing to compare with yet.");
    const onSlide = el("button", { type: "button", id: "similar-slide-search", title: "Score the whole slide against this region: heat map and candidate regions",
      onclick: () => slideSearch.run(id, slideBox) }, "Find similar regions on this slide");
    body.replaceChildren(...[
      el("h3", {}, "Suggested term"), suggestions,
      el("h3", {}, "Most similar"), list,
      sim.pending ? el("p", { class: "muted" }, `${sim.pending}${sim.pending >= 1000 ? "+" : ""} annotations are still being described.`) : null,
      el("p", {}, onSlide),
    ].filter(Boolean));
  }

  scope.addEventListener("change", () => { scope.blur(); if (current !== null) show(current); });
  window.microtome.similar = { show, current: () => current };
  // Selecting an annotation, or drawing one (once saved: it has an id), shows its neighbours.
  document.addEventListener("microtome:annotation-selected", (e) => show(e.detail.id));
  document.addEventListener("microtome:annotation-created", (e) => show(e.detail.id));
}
