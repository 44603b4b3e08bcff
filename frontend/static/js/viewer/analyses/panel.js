// The Analyse panel of the viewer: pick an app, fill the form generated from
// its parameter schema, choose the region (the view, the selected annotation
// or the whole slide), Run; the run shows live progress and log lines and
// can be cancelled; when done its results appear as one layer, with the
// count per term, and can be shown, hidden, exported, re-run or deleted.
import { api, ApiError, items } from "../../api.js";
import { el, toast } from "../../ui.js";
import { MeasureColours } from "./colour.js";
import { schemaForm } from "./form.js";
import { ResultLayers } from "./results.js";

const POLL_MS = 1000;
// Positions, not properties of the objects: left out of the summary lines.
const shown = ([k]) => !/^Centroid /.test(k);
const ENDED = new Set(["done", "failed", "cancelled"]);

const analysesApi = {
  apps: (projectId) => api(projectId ? `projects/${projectId}/apps` : "apps", { noRedirect: true }),
  list: (imageId) => api(`images/${imageId}/analyses?limit=50`, { noRedirect: true }),
  get: (id) => api(`analyses/${id}`, { noRedirect: true }),
  summary: (id) => api(`analyses/${id}/summary`, { noRedirect: true }),
  create: (imageId, body) => api(`images/${imageId}/analyses`, { method: "POST", body, noRedirect: true }),
  cancel: (id) => api(`analyses/${id}/cancel`, { method: "POST", noRedirect: true }),
  remove: (id) => api(`analyses/${id}`, { method: "DELETE", noRedirect: true }),
};

/** The level-0 rectangle {x, y, w, h} of the chosen region, or null (whole slide). */
export function regionOf(choice, layer, meta) {
  const clip = (b) => {
    const x0 = Math.max(0, Math.floor(b[0]));
    const y0 = Math.max(0, Math.floor(b[1]));
    const x1 = Math.min(meta.width, Math.ceil(b[2]));
    const y1 = Math.min(meta.height, Math.ceil(b[3]));
    return x1 > x0 && y1 > y0 ? { x: x0, y: y0, w: x1 - x0, h: y1 - y0 } : undefined;
  };
  if (choice === "viewport") return clip(layer.visibleBox());
  if (choice === "selection") {
    const f = layer.selectedId !== null ? layer.get(layer.selectedId) : null;
    return f ? clip(f.bbox) : undefined;
  }
  return null;
}

export async function setupAnalyses(state, annotations = {}) {
  const layer = window.microtome.annotations;
  if (!layer || !state.user || state.token) return null; // share links: no analyses
  const imageId = encodeURIComponent(state.id);
  const projectId = annotations.projectId || null;
  // Viewers see the runs; the server has the last word on Run (403).
  const canRun = annotations.role !== "viewer";
  const results = new ResultLayers(layer);
  const colours = new MeasureColours(layer);
  const section = el("section", { id: "analyse-panel", "aria-labelledby": "analyse-title" });
  document.querySelector(".sidepanel").append(section);
  window.microtome.analyses = { results, colours, runs: new Map(), projectId };

  let apps = [];
  try {
    apps = items(await analysesApi.apps(projectId)).filter((a) => a.enabled !== false);
  } catch (e) {
    section.replaceChildren(el("h2", { id: "analyse-title" }, "Analyse"), el("p", { class: "muted" }, `Unavailable: ${e.message}`));
    return null;
  }
  let terms = [];
  try { terms = items(await api(`images/${imageId}/terms`, { noRedirect: true })); } catch { /* term pickers stay empty */ }

  const appSelect = el("select", { id: "analyse-app", "aria-label": "App" },
    ...apps.map((a) => el("option", { value: a.name }, `${a.title || a.name} ${a.version}`)));
  const description = el("p", { class: "muted", id: "analyse-description" });
  const formBox = el("div", { id: "analyse-form" });
  const regionSelect = el("select", { id: "analyse-region", "aria-label": "Region" },
    el("option", { value: "viewport" }, "The current view"),
    el("option", { value: "selection" }, "The selected annotation"),
    el("option", { value: "whole", selected: true }, "The whole slide"));
  const runButton = el("button", { type: "submit", id: "analyse-run", class: "primary" }, "Run");
  const runsList = el("ul", { class: "analysis-runs", id: "analysis-runs", "aria-label": "Analyses of this image" });
  let form = null;

  function pickApp() {
    const app = apps.find((a) => a.name === appSelect.value);
    description.textContent = app ? app.description : "";
    form = schemaForm(app ? app.params_schema : {}, terms);
    formBox.replaceChildren(form.element);
  }
  appSelect.addEventListener("change", pickApp);

  // novalidate: the server checks the schema and names each wrong field (one source of truth).
  const runForm = el("form", { id: "analyse-start", "aria-label": "Run an analysis", novalidate: true },
    el("label", { for: "analyse-app" }, "App"), appSelect, description, formBox,
    el("label", { for: "analyse-region" }, "Region"), regionSelect,
    el("div", { class: "row", style: "margin-top:.5rem" }, runButton));
  runForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const region = regionOf(regionSelect.value, layer, state.meta);
    if (region === undefined) {
      toast(regionSelect.value === "selection" ? "Select an annotation first" : "The view is outside the image", "error");
      return;
    }
    const body = { app: appSelect.value, params: form.values() };
    if (region) body.region = region;
    if (projectId) body.project = Number(projectId); // results go to the project being viewed
    runButton.disabled = true;
    try {
      form.showErrors({});
      const a = await analysesApi.create(imageId, body);
      toast(`${appSelect.selectedOptions[0].textContent}: queued`);
      track(a);
    } catch (ex) {
      if (ex instanceof ApiError && ex.detail && ex.detail.fields) form.showErrors(ex.detail.fields);
      toast(`Could not start: ${ex.message}`, "error");
    } finally { runButton.disabled = false; }
  });

  section.replaceChildren(
    el("h2", { id: "analyse-title" }, "Analyse"),
    apps.length ? (canRun ? runForm : el("p", { class: "muted" }, "Running analyses needs the contributor role."))
      : el("p", { class: "muted" }, "No analysis app is enabled here."),
    el("h2", {}, "Analyses"), runsList);
  if (apps.length) pickApp();

  // -- the runs of this image ---------------------------------------------------
  const rows = new Map(); // id → {li, a, timer}
  function row(a) {
    let r = rows.get(a.id);
    if (!r) {
      r = { li: el("li", { class: "analysis-run", dataset: { id: String(a.id) } }) };
      rows.set(a.id, r);
      runsList.prepend(r.li);
    }
    r.a = a;
    window.microtome.analyses.runs.set(a.id, a);
    render(r);
    return r;
  }

  function render(r) {
    const { a } = r;
    const app = apps.find((x) => x.name === a.app);
    const title = `${(app && app.title) || a.app} #${a.id}`;
    const running = !ENDED.has(a.status);
    const show = el("input", { type: "checkbox", checked: results.isShown(a.id), "aria-label": `Show the results of ${title}`,
      onchange: (e) => results.setShown(a.id, e.target.checked) });
    const parts = [
      el("div", { class: "row", style: "justify-content:space-between" },
        el("strong", {}, title), el("span", { class: `badge ${a.status}` }, a.status)),
    ];
    if (running) {
      parts.push(el("progress", { max: "1", value: String(a.progress), "aria-label": `Progress of ${title}` }));
      parts.push(el("button", { type: "button", class: "analysis-cancel", onclick: () => cancel(a) }, "Cancel"));
    }
    if (a.status === "done") {
      parts.push(el("div", { class: "row" },
        el("label", { style: "display:flex;gap:.3rem;align-items:center;margin:0" }, show, "Show"),
        el("span", { class: "analysis-count" }, `${a.result_count ?? 0} objects`),
        el("a", { class: "button", href: `/api/analyses/${a.id}/export`, download: `analysis-${a.id}.geojson` }, "Export")));
      if (r.summary) parts.push(...[summaryBox(r.summary), colourBox(a, r.summary)].filter(Boolean));
    }
    if (a.error) parts.push(el("p", { class: "error analysis-error" }, a.error));
    if (a.log) parts.push(el("details", { open: running || undefined }, el("summary", {}, "Log"), el("pre", { class: "analysis-log" }, a.log)));
    if (a.traceback) parts.push(el("details", {}, el("summary", {}, "Traceback"), el("pre", { class: "analysis-log" }, a.traceback)));
    if (!running && canRun) {
      parts.push(el("div", { class: "row" },
        el("button", { type: "button", onclick: () => rerun(a) }, "Re-run"),
        el("button", { type: "button", class: "danger", onclick: () => remove(a) }, a.status === "done" ? "Delete with results" : "Delete")));
    }
    r.li.replaceChildren(...parts);
  }

  function summaryBox(s) {
    // Per term: its count, and the mean / median of its first measurements.
    const termRows = (s.terms || []).map((t) => el("li", { class: "analysis-term", dataset: { term: t.name } },
      `${t.name}: ${t.count}`,
      el("ul", {}, ...Object.entries(t.measurements || {}).filter(shown).slice(0, 3).map(([k, v]) =>
        el("li", {}, `${k}: mean ${fmt(v.mean)}, median ${fmt(v.median)}`)))));
    const m = Object.entries(s.measurements || {}).filter(shown).slice(0, 4).map(([k, v]) =>
      el("li", {}, `${k}: mean ${fmt(v.mean)}, median ${fmt(v.median)}`));
    return el("div", { class: "analysis-summary" }, el("ul", {}, ...termRows, ...m));
  }

  /** "Colour by": term colours or one measurement, with its legend. */
  function colourBox(a, s) {
    const keys = Object.keys(s.measurements || {});
    if (!keys.length) return null;
    const legendBox = el("div", { class: "analysis-legend" });
    const show = () => legendBox.replaceChildren(...[colours.legend(a.id)].filter(Boolean));
    const select = el("select", { class: "analysis-colour-by", "aria-label": `Colour ${a.app} #${a.id} by`,
      onchange: async (e) => {
        try { await colours.colourBy(a.id, e.target.value); } catch (ex) { toast(`Could not colour: ${ex.message}`, "error"); }
        show();
      } },
    el("option", { value: "" }, "Terms"),
    ...keys.map((k) => el("option", { value: k, selected: colours.keyOf(a.id) === k || undefined }, k)));
    show();
    return el("div", { class: "analysis-colour" },
      el("label", { style: "display:flex;gap:.4rem;align-items:center;margin:0" }, "Colour by", select), legendBox);
  }

  async function track(a) {
    const r = row(a);
    clearTimeout(r.timer);
    if (!ENDED.has(a.status)) {
      r.timer = setTimeout(async () => {
        try { track(await analysesApi.get(a.id)); } catch (e) {
          if (e instanceof ApiError && e.status === 404) { r.li.remove(); rows.delete(a.id); } else r.timer = setTimeout(() => track(r.a), 5 * POLL_MS);
        }
      }, POLL_MS);
      return;
    }
    if (a.status === "done" && !r.summary) {
      try { r.summary = await analysesApi.summary(a.id); } catch { r.summary = null; }
      render(r);
      results.reload();
    }
  }

  async function cancel(a) {
    try { track(await analysesApi.cancel(a.id)); results.reload(); } catch (e) { toast(`Could not cancel: ${e.message}`, "error"); }
  }

  async function rerun(a) {
    const body = { app: a.app, version: a.version, params: a.params };
    if (a.region) body.region = a.region;
    if (a.project_id) body.project = a.project_id;
    try { track(await analysesApi.create(imageId, body)); } catch (e) { toast(`Could not re-run: ${e.message}`, "error"); }
  }

  async function remove(a) {
    if (!confirm(`Delete analysis #${a.id}${a.result_count ? ` and its ${a.result_count} results` : ""}?`)) return;
    try {
      await analysesApi.remove(a.id);
      const r = rows.get(a.id);
      if (r) { clearTimeout(r.timer); r.li.remove(); rows.delete(a.id); }
      window.microtome.analyses.runs.delete(a.id);
      results.reload();
    } catch (e) { toast(`Could not delete: ${e.message}`, "error"); }
  }

  try {
    for (const a of items(await analysesApi.list(imageId)).reverse()) track(a);
  } catch (e) { console.warn("analyses", e); }
  // A link from the project's Analyses tab (#analysis-<id>): bring that run into view.
  const linked = /^#analysis-(\d+)$/.exec(location.hash);
  const r = linked && rows.get(Number(linked[1]));
  if (r) { r.li.classList.add("linked"); r.li.scrollIntoView({ block: "nearest" }); }
  return { results };
}

function fmt(v) {
  if (v === null || v === undefined) return "–";
  return Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3);
}
