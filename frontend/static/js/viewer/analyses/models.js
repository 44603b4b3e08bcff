// The "trained model" field of an app's form (a parameter whose schema says
// "format": "analysis-model", the pixel classifier's `model`): a select of the
// models the project's earlier runs trained, newest first, each named by its
// run, image and classes; empty = learn from this image's annotations.
import { api, items } from "../../api.js";
import { el } from "../../ui.js";

/** The project the viewer shows (the Analyse panel records it), or null. */
const projectOf = () => (window.microtome && window.microtome.analyses && window.microtome.analyses.projectId) || null;

export function modelLabel(m) {
  const classes = (m.classes || []).map((c) => c.name).join(", ");
  const when = (m.created_at || "").slice(0, 10);
  return `#${m.analysis_id} · ${m.image_name} · ${classes}${when ? ` · ${when}` : ""}`;
}

/** {name, row, read, error} like form.js's fields. */
export function modelField(name, prop) {
  const id = `param-${name}`;
  const label = prop.title || name;
  const none = el("option", { value: "" }, "None: learn from the annotations drawn here");
  const input = el("select", { id, name, "aria-label": label }, none);
  const note = el("small", { class: "muted param-help", id: `${id}-note` }, prop.description || "");
  const error = el("small", { class: "param-error", role: "alert", hidden: true });
  const row = el("div", { class: "param" }, el("label", { for: id }, label), input, note, error);
  const projectId = projectOf();
  if (!projectId) {
    note.textContent = "Trained models are listed per project: open the image from a project to apply one.";
  } else {
    api(`projects/${encodeURIComponent(projectId)}/classifier-models?limit=100`, { noRedirect: true })
      .then((doc) => {
        const models = items(doc);
        input.append(...models.map((m) => el("option", { value: String(m.analysis_id) }, modelLabel(m))));
        input.dataset.loaded = String(models.length);
        if (!models.length) note.textContent = "No trained model in this project yet: run the classifier once to train one.";
      })
      .catch((e) => { note.textContent = `Models unavailable: ${e.message}`; input.dataset.loaded = "error"; });
  }
  const read = () => (input.value ? Number(input.value) : null);
  return { name, row, read, error };
}
