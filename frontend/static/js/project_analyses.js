// Project page, Analyses tab: every analysis run on the project's images
// (status, duration, who, parameters, a link to the results in the viewer),
// and for the project's managers the apps its members may run.
import { api, items } from "./api.js";
import { currentUser, el, formatDate, idFromPath, toast } from "./ui.js";

const PAGE = 50;
const projectId = idFromPath("projects");
const $ = (s) => document.querySelector(s);
const state = { offset: 0, total: 0, project: null, user: null, timer: null };

function duration(s) {
  if (s === null || s === undefined) return "";
  if (s < 60) return `${s.toFixed(1)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

function paramsText(a) {
  const p = Object.entries(a.params || {}).map(([k, v]) => `${k}=${v === null ? "auto" : JSON.stringify(v)}`).join(", ");
  const r = a.region ? `region ${a.region.x},${a.region.y} ${a.region.w}×${a.region.h}` : "whole slide";
  return `${p}${p ? "; " : ""}${r}`;
}

function resultsLink(a) {
  const href = `/viewer/${encodeURIComponent(a.image_id)}?project=${encodeURIComponent(projectId)}#analysis-${a.id}`;
  return el("a", { href }, a.status === "done" ? `${a.result_count ?? 0} results` : "open image");
}

async function loadRuns() {
  clearTimeout(state.timer);
  let page;
  try {
    page = await api(`projects/${encodeURIComponent(projectId)}/analyses?limit=${PAGE}&offset=${state.offset}`);
  } catch (e) { toast(`Could not list the analyses: ${e.message}`, "error"); return; }
  state.total = page.total;
  const body = $("#analyses-body");
  body.replaceChildren(...items(page).map((a) => el("tr", { dataset: { id: String(a.id) } },
    el("td", {}, `#${a.id}`),
    el("td", {}, a.app, el("span", { class: "muted" }, ` ${a.version}`)),
    el("td", {}, a.image_name),
    el("td", {}, el("span", { class: `badge ${a.status}` }, a.status),
      a.status === "running" ? ` ${Math.round(a.progress * 100)}%` : "",
      a.error ? el("div", { class: "muted" }, a.error) : null),
    el("td", {}, duration(a.duration_s)),
    el("td", { title: a.executor ? `ran on ${a.executor}` : "" }, a.username || "–"),
    el("td", {}, formatDate(a.created_at)),
    el("td", { class: "params" }, paramsText(a)),
    el("td", {}, resultsLink(a)))));
  $("#analyses-empty").hidden = page.total > 0;
  $("#analyses-page").textContent = page.total > PAGE ? `${state.offset + 1}–${Math.min(state.offset + PAGE, page.total)} of ${page.total}` : "";
  $("#analyses-prev").disabled = state.offset === 0;
  $("#analyses-next").disabled = state.offset + PAGE >= page.total;
  // Runs still going: refresh while the tab is open.
  if (items(page).some((a) => a.status === "queued" || a.status === "running") && !$("#analyses-section").hidden) {
    state.timer = setTimeout(loadRuns, 2000);
  }
}

async function loadApps() {
  const box = $("#project-apps");
  try {
    state.user = state.user || await currentUser();
    state.project = state.project || await api(`projects/${encodeURIComponent(projectId)}`);
  } catch { /* the list below says why */ }
  let apps;
  try { apps = items(await api(`projects/${encodeURIComponent(projectId)}/apps`)); } catch (e) { box.textContent = e.message; return; }
  const manager = (state.user && state.user.is_admin) || (state.project && state.project.role === "manager");
  box.replaceChildren(el("h3", {}, "Apps"), el("ul", { class: "plain" }, ...apps.map((a) => {
    const toggle = el("input", { type: "checkbox", checked: a.enabled, disabled: !manager, "aria-label": `Enable ${a.title || a.name}`,
      onchange: async (e) => {
        try {
          await api(`projects/${encodeURIComponent(projectId)}/apps/${encodeURIComponent(a.name)}`, { method: "PUT", body: { enabled: e.target.checked } });
          toast(`${a.title || a.name} ${e.target.checked ? "enabled" : "disabled"} in this project`);
        } catch (ex) { e.target.checked = !e.target.checked; toast(ex.message, "error"); }
      } });
    return el("li", { dataset: { app: a.name } }, el("label", { style: "display:flex;gap:.4rem;align-items:center" }, toggle,
      el("strong", {}, a.title || a.name), el("span", { class: "muted" }, ` ${a.version} — ${a.description}`)));
  })));
}

function build() {
  const section = el("section", { id: "analyses-section", "aria-labelledby": "analyses-title", hidden: true },
    el("div", { class: "toolbar" }, el("h2", { id: "analyses-title", style: "margin:0" }, "Analyses"),
      el("span", { class: "spacer" }), el("button", { type: "button", onclick: () => loadRuns() }, "Refresh")),
    el("p", { id: "analyses-empty", class: "muted", hidden: true }, "No analysis has run on this project's images yet. Open an image and use its Analyse panel."),
    el("table", { class: "list", id: "analyses-table" },
      el("thead", {}, el("tr", {}, ...["Run", "App", "Image", "Status", "Duration", "Who", "Started", "Parameters", "Results"].map((h) => el("th", {}, h)))),
      el("tbody", { id: "analyses-body" })),
    el("nav", { class: "pager", "aria-label": "Analysis pages" },
      el("button", { type: "button", id: "analyses-prev", onclick: () => { state.offset = Math.max(0, state.offset - PAGE); loadRuns(); } }, "Previous"),
      el("span", { id: "analyses-page", class: "muted" }),
      el("button", { type: "button", id: "analyses-next", onclick: () => { state.offset += PAGE; loadRuns(); } }, "Next")),
    el("div", { id: "project-apps" }));
  $("main.page").append(section);
  const images = document.querySelector("section[aria-labelledby=images-title]");
  const upload = $("#upload-section");
  const button = $("#analyses-button");
  button.onclick = () => {
    const open = section.hidden;
    section.hidden = !open;
    images.hidden = open;
    if (open) upload.dataset.wasHidden = String(upload.hidden);
    upload.hidden = open || upload.dataset.wasHidden === "true";
    button.textContent = open ? "Images" : "Analyses";
    button.setAttribute("aria-pressed", String(open));
    if (open) { loadRuns(); loadApps(); }
  };
  if (location.hash === "#analyses") button.click();
}

// Built at once (the button works from the first click); who may switch apps
// is learnt when the tab opens.
build();
