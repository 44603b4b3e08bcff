// The project's description (Markdown, shown as the server's sanitised HTML)
// and its key/value properties on the project page; managers edit both.
import { api } from "./api.js";
import { descriptionEditor, propertyEditor } from "./propedit.js";
import { el } from "./ui.js";

export function setupProjectAbout(projectId, manager) {
  const pid = encodeURIComponent(projectId);
  const desc = descriptionEditor({
    id: "project-description", editable: manager,
    load: () => api(`projects/${pid}/about`),
    save: (description) => api(`projects/${pid}/about`, { method: "PATCH", body: { description } }),
  });
  const props = propertyEditor({
    id: "project-props", editable: manager, label: "Project properties",
    load: async () => (await api(`projects/${pid}/properties`)).properties,
    save: async (changes) => (await api(`projects/${pid}/properties`, { method: "PATCH", body: changes })).properties,
  });
  const box = el("section", { id: "project-about", class: "card", "aria-label": "About this project" }, desc, props);
  document.querySelector("#project-error").after(box);
}
