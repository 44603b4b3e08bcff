// Home: the user's projects (create one here), or the login page.
import { api, ApiError, items } from "./api.js";
import { currentUser, el, formatDate, renderTopbar, toast } from "./ui.js";
import { imageCard } from "./images.js";
import { recentImages } from "./viewer/nav.js";

const content = document.querySelector("#content");

async function main() {
  const user = await currentUser();
  renderTopbar(user);
  if (!user) {
    // No session: log in, unless this server has no catalog at all
    // (tile server alone), where we list what the tile server offers.
    try {
      await api("setup", { noRedirect: true });
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return standalone();
    }
    location.assign("/login?next=/");
    return;
  }
  await renderProjects(user);
}

async function renderProjects(user) {
  const list = el("tbody");
  const form = el("form", { class: "row", "aria-label": "Create a project" },
    el("label", { for: "new-project", class: "sr-only" }, "New project name"),
    el("input", { id: "new-project", name: "name", required: true, placeholder: "New project name", maxlength: "200" }),
    el("button", { class: "primary", type: "submit" }, "Create project"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const name = form.elements.name.value.trim();
    if (!name) return;
    try {
      const p = await api("projects", { method: "POST", body: { name } });
      location.assign(`/projects/${p.id}`);
    } catch (err) {
      toast(`Could not create the project: ${err.message}`, "error");
    }
  });
  content.replaceChildren(
    el("div", { class: "toolbar" }, el("h1", { style: "margin:0" }, "Projects"), el("span", { class: "spacer" }), form),
    el("table", { class: "list", "aria-label": "Projects" },
      el("thead", {}, el("tr", {}, el("th", {}, "Name"), el("th", {}, "Images"), el("th", {}, "Your role"), el("th", {}, "Created"))),
      list));
  let projects = [];
  try {
    projects = items(await api("projects"));
  } catch (err) {
    content.append(el("p", { class: "notice error" }, `Could not load projects: ${err.message}`));
    return;
  }
  if (!projects.length) {
    list.append(el("tr", {}, el("td", { colspan: "4", class: "empty" }, "No projects yet. Create one to upload slides.")));
  }
  for (const p of projects) {
    list.append(el("tr", {},
      el("td", {}, el("a", { href: `/projects/${p.id}` }, p.name)),
      el("td", {}, p.image_count ?? p.images ?? ""),
      el("td", {}, p.role || (user.is_admin ? "admin" : "")),
      el("td", {}, formatDate(p.created_at))));
  }
  renderViewed(user);
  await renderRecent();
}

/** The images this user opened last in this browser (kept by the viewer). */
function renderViewed(user) {
  const viewed = recentImages(user);
  if (!viewed.length) return;
  content.append(el("h2", {}, "Recently viewed"),
    el("ul", { class: "recent-list", id: "recently-viewed" }, viewed.map((r) => el("li", {},
      el("a", { href: `/viewer/${encodeURIComponent(r.id)}${r.project ? `?project=${encodeURIComponent(r.project)}` : ""}` }, r.name || `Image ${r.id}`),
      el("span", { class: "muted" }, ` · ${formatDate(r.at)}`)))));
}

async function renderRecent() {
  let images = [];
  try { images = items(await api("images?limit=12&sort=-created_at")); } catch { return; }
  if (!images.length) return;
  content.append(el("h2", {}, "Recent images"),
    el("div", { class: "grid", "aria-label": "Recent images" }, images.map((im) => imageCard(im))));
}

async function standalone() {
  content.replaceChildren(el("h1", {}, "Images"), el("p", { class: "muted" }, "Loading…"));
  let images = [];
  try {
    const res = await fetch("/api/images", { credentials: "same-origin" });
    if (res.ok) images = items(await res.json());
  } catch { /* no list available */ }
  const grid = el("div", { class: "grid" }, images.map((im) => imageCard(im)));
  content.replaceChildren(el("h1", {}, "Images"),
    images.length ? grid : el("p", { class: "empty" }, "No images are listed by this server. Open one at /viewer/<id>."));
}

main().catch((e) => {
  content.replaceChildren(el("p", { class: "notice error" }, `Something went wrong: ${e.message}`));
});
