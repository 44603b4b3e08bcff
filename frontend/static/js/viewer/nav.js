// Case navigation: back to the project, previous/next image of the project
// (buttons and [ / ] keys), and the images this user viewed recently.
// "Recently viewed" lives in this browser's localStorage, per user (not on
// the server: another browser has its own list).
import { api, items } from "../api.js";
import { el } from "../ui.js";
import { isTyping } from "./keys.js";

const RECENT_MAX = 10;
const recentKey = (user) => `microtome.recent.${user ? user.id : "anonymous"}`;

/** The user's recently viewed images, newest first: [{id, name, project, at}]. */
export function recentImages(user, storage = localStorage) {
  try {
    const list = JSON.parse(storage.getItem(recentKey(user)) || "[]");
    return Array.isArray(list) ? list.filter((r) => r && r.id !== undefined) : [];
  } catch { return []; }
}

/** Put this image first in the user's list (deduplicated, at most RECENT_MAX). */
export function rememberImage(user, entry, storage = localStorage) {
  const list = recentImages(user, storage).filter((r) => String(r.id) !== String(entry.id));
  list.unshift({ ...entry, at: new Date().toISOString() });
  try { storage.setItem(recentKey(user), JSON.stringify(list.slice(0, RECENT_MAX))); } catch { /* storage full or off */ }
  return list.slice(0, RECENT_MAX);
}

function viewerHref(id, projectId) {
  return `/viewer/${encodeURIComponent(id)}${projectId ? `?project=${encodeURIComponent(projectId)}` : ""}`;
}

/** All image ids of the project in the project page's default order (newest first). */
async function projectImages(projectId) {
  const out = [];
  for (let offset = 0; offset < 5000; offset += 500) {
    const data = await api(`projects/${encodeURIComponent(projectId)}/images?limit=500&offset=${offset}&sort=-created_at`, { noRedirect: true });
    const page = items(data);
    out.push(...page);
    if (page.length < 500 || out.length >= (data.total ?? 0)) break;
  }
  return out;
}

export async function setupNav(state) {
  if (!state.user || state.token) return;
  const projectId = new URLSearchParams(location.search).get("project") || (state.image && state.image.project_id) || null;
  const box = el("nav", { id: "case-nav", class: "case-nav", "aria-label": "Case navigation" });
  document.querySelector("#info-panel").prepend(box);
  const name = (state.image && (state.image.name || state.image.filename)) || state.meta.name || String(state.id);
  const recent = rememberImage(state.user, { id: state.id, name, project: projectId });
  renderRecent(recent.filter((r) => String(r.id) !== String(state.id)));
  if (!projectId) return;
  let project = null;
  let list = [];
  try {
    [project, list] = await Promise.all([
      api(`projects/${encodeURIComponent(projectId)}`, { noRedirect: true }),
      projectImages(projectId),
    ]);
  } catch { return; } // not a project of this user: no project navigation
  const i = list.findIndex((im) => String(im.id) === String(state.id));
  const prev = i > 0 ? list[i - 1] : null;
  const next = i >= 0 && i < list.length - 1 ? list[i + 1] : null;
  const go = (im) => { if (im) location.assign(viewerHref(im.id, projectId)); };
  const button = (id, im, text, key) => el("button", {
    type: "button", id, disabled: !im, title: im ? `${im.name} (${key})` : "", "aria-label": im ? `${text} image: ${im.name}` : `No ${text.toLowerCase()} image`, onclick: () => go(im),
  }, text === "Previous" ? "‹ Previous" : "Next ›");
  box.replaceChildren(
    el("a", { id: "back-to-project", href: `/projects/${encodeURIComponent(projectId)}` }, `← ${project.name}`),
    el("div", { class: "row" },
      button("prev-image", prev, "Previous", "["),
      el("span", { class: "muted", id: "image-position" }, i >= 0 ? `${i + 1} of ${list.length}` : ""),
      button("next-image", next, "Next", "]")));
  document.addEventListener("keydown", (e) => {
    if (isTyping(e) || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "[" && prev) { e.preventDefault(); go(prev); }
    else if (e.key === "]" && next) { e.preventDefault(); go(next); }
  });
}

function renderRecent(list) {
  if (!list.length) return;
  const section = el("section", { id: "recent-panel" },
    el("h2", {}, "Recently viewed ", el("span", { class: "muted", title: "Kept in this browser for your account" }, "(this browser)")),
    el("ul", { class: "recent-list" }, list.map((r) => el("li", {}, el("a", { href: viewerHref(r.id, r.project) }, r.name || `Image ${r.id}`)))));
  document.querySelector(".sidepanel").append(section);
}
