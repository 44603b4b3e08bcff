// The image's description (Markdown rendered and sanitised by the server), tags,
// properties and attached files; managers edit the description, tags and
// properties (propedit.js), contributors attach files.
import { api, authHeaders, items } from "../api.js";
import { descriptionEditor, tagsEditor } from "../propedit.js";
import { el, formatBytes, toast } from "../ui.js";

async function render(app, panel) {
  const id = encodeURIComponent(app.id);
  const [about, props, files] = await Promise.all([
    api(`images/${id}/about`), api(`images/${id}/properties`), api(`images/${id}/attachments`)]);
  const editable = Boolean(app.user && !app.token);
  const patchAbout = (body) => api(`images/${id}/about`, { method: "PATCH", body });
  const desc = descriptionEditor({ id: "image-description", editable, load: async () => about,
    save: (description) => patchAbout({ description }) });
  const tags = tagsEditor({ id: "image-tags", editable, load: async () => about.tags,
    save: async (want) => (await patchAbout({ tags: want })).tags });
  const rows = items(props).map((p) => el("tr", {}, el("th", { scope: "row" }, p.key), el("td", {}, p.value),
    el("td", { class: "muted" }, p.source === "user" ? "" : p.source)));
  const addForm = el("form", { id: "prop-form", class: "row" },
    el("input", { name: "key", placeholder: "key", "aria-label": "Property key", required: true, size: 8 }),
    el("input", { name: "value", placeholder: "value", "aria-label": "Property value", size: 10 }),
    el("button", { type: "submit" }, "Set"));
  addForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = addForm.elements;
    try {
      await api(`images/${id}/properties`, { method: "PATCH", body: { [f.key.value]: f.value.value === "" ? null : f.value.value } });
      await render(app, panel);
    } catch (e) { toast(e.message, "error"); }
  });
  const upload = el("input", { type: "file", id: "attach-file", "aria-label": "Attach a file" });
  upload.addEventListener("change", async () => {
    const file = upload.files[0];
    if (!file) return;
    const resp = await fetch(`/api/images/${id}/attachments?filename=${encodeURIComponent(file.name)}`,
      { method: "POST", body: file, headers: authHeaders({ "Content-Type": "application/octet-stream" }), credentials: "same-origin" });
    if (!resp.ok) toast((await resp.json().catch(() => ({}))).error || `upload failed (${resp.status})`, "error");
    await render(app, panel);
  });
  panel.replaceChildren(el("h2", {}, "About"), desc, tags,
    el("table", { class: "props", id: "image-properties" }, el("tbody", {}, rows)),
    app.user && !app.token ? addForm : null,
    el("h3", {}, "Attachments"),
    el("ul", { id: "attachments" }, items(files).map((a) => el("li", {},
      el("a", { href: a.url, download: a.filename }, a.filename), ` (${formatBytes(a.size)})`))),
    app.user && !app.token ? upload : null);
  panel.hidden = false;
}

export function setupAbout(app) {
  const panel = document.querySelector("#about-panel");
  if (!panel) return;
  render(app, panel).catch((e) => console.warn("about", e));
}
