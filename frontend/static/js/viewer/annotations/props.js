// The selected annotation's key/value properties under "Selected" in the
// annotation panel (GET/PATCH /api/annotations/{id}/properties); the
// project's contributors, reviewers and managers edit them.
import { api } from "../../api.js";
import { propertyEditor } from "../../propedit.js";
import { el } from "../../ui.js";

/** A box placed after `anchor` that follows the selection; `editable()` says who may edit. */
export function setupAnnotationProps(anchor, { editable }) {
  const box = el("div", { id: "anno-props-box" });
  anchor.after(box);
  let shown = null;
  document.addEventListener("microtome:annotation-selected", (e) => {
    const id = e.detail.id;
    if (id === shown) return;
    shown = id;
    if (id === null || id <= 0) { box.replaceChildren(); return; }
    box.replaceChildren(propertyEditor({
      id: "anno-props", editable: editable(), label: "Annotation properties",
      load: async () => (await api(`annotations/${id}/properties`, { noRedirect: true })).properties,
      save: async (changes) => (await api(`annotations/${id}/properties`, { method: "PATCH", body: changes, noRedirect: true })).properties,
    }));
  });
}
