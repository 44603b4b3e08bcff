// The delete confirmation for projects and images: says exactly what goes to the
// trash (images, annotations and their authors), for how long it can be
// restored, and offers to export the annotations first.
import { api, items } from "./api.js";
import { el, toast } from "./ui.js";

function plural(n, one, many = `${one}s`) { return `${n} ${n === 1 ? one : many}`; }

/** The sentence the dialog states, from GET /api/trash/preview. */
export function describe(kind, p) {
  const parts = [];
  if (kind === "project") {
    parts.push(`its ${plural(p.images, "image link")}`);
    if (p.members) parts.push(plural(p.members, "membership"));
    if (p.terms) parts.push(plural(p.terms, "term"));
  }
  parts.push(`${plural(p.annotations, "annotation")} by ${plural(p.authors, "person", "people")}`);
  return parts.join(", ");
}

/** Save `data` as a file named `name`. */
function download(name, data, type = "application/geo+json") {
  const url = URL.createObjectURL(new Blob([data], { type }));
  const a = el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function imageFeatures(image) {
  const res = await api(`images/${image.id}/annotations/export`, { raw: true });
  if (!res.ok) throw new Error(`export of "${image.name}" failed (${res.status})`);
  const doc = await res.json();
  for (const f of doc.features || []) {
    f.properties = { ...(f.properties || {}), image_id: image.id, image_name: image.name };
  }
  return doc.features || [];
}

/** Every annotation of the target as one GeoJSON FeatureCollection download. */
async function exportFirst(target) {
  let images;
  if (target.kind === "image") images = [{ id: target.id, name: target.name }];
  else {
    images = [];
    for (let offset = 0; ; offset += 500) {
      const page = await api(`projects/${target.id}/images?limit=500&offset=${offset}`);
      images.push(...items(page));
      if (offset + 500 >= (page.total ?? 0)) break;
    }
  }
  const features = [];
  for (const im of images) features.push(...await imageFeatures(im));
  download(`${target.name.replace(/[^\w.-]+/g, "_")}-annotations.geojson`,
    JSON.stringify({ type: "FeatureCollection", features }));
  return features.length;
}

/**
 * Ask before deleting {kind: "project"|"image", id, name}; resolves true when the
 * user confirmed (the caller then sends the DELETE).
 */
export async function confirmDelete(target) {
  const q = target.kind === "project" ? `project_id=${target.id}` : `image_id=${target.id}`;
  const preview = await api(`trash/preview?${q}`);
  const what = target.kind === "project" ? `project “${target.name}”` : `image “${target.name}”`;
  const days = preview.trash_days;
  const dlg = el("dialog", { id: "delete-dialog", "aria-labelledby": "delete-title" });
  const exportButton = el("button", { type: "button", id: "delete-export" }, "Export annotations first (GeoJSON)");
  const status = el("p", { class: "muted", "aria-live": "polite" });
  exportButton.onclick = async () => {
    exportButton.disabled = true;
    try { status.textContent = `Exported ${plural(await exportFirst(target), "annotation")}.`; } catch (e) { toast(`Export failed: ${e.message}`, "error"); }
    exportButton.disabled = false;
  };
  const result = new Promise((resolve) => {
    dlg.addEventListener("close", () => { resolve(dlg.returnValue === "delete"); dlg.remove(); });
  });
  dlg.append(
    el("h2", { id: "delete-title" }, `Delete ${what}?`),
    el("p", { id: "delete-summary" }, `This moves to the trash: ${describe(target.kind, preview)}.`),
    target.kind === "project" ? el("p", { class: "muted" }, "The images themselves stay in the catalog.") : null,
    el("p", { class: "muted" }, days > 0
      ? `Project managers and administrators can restore it from the Trash page for ${plural(days, "day")}; then it is purged.`
      : "It is purged within the hour."),
    el("p", {}, exportButton), status,
    el("form", { method: "dialog", class: "buttons" },
      el("button", { value: "cancel" }, "Cancel"),
      el("button", { value: "delete", class: "danger", id: "delete-confirm" }, "Move to trash")));
  document.body.append(dlg);
  dlg.showModal();
  return result;
}
