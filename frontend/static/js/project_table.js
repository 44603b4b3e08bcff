// Every annotation of the project in one table on the project page: the
// viewer's table (viewer/annotations/table.js) over GET
// /api/projects/{id}/annotations/table — server-side keyset pages, sort by any
// column both ways, filters by image, term, author, review status and a
// property (key = value), bulk actions, exports of the current filter, and
// each row opens the annotation in the viewer (#annotation-ID).
import { api, items } from "./api.js";
import { AnnotationTable } from "./viewer/annotations/table.js";
import { el } from "./ui.js";

const REVIEWERS = new Set(["reviewer", "manager"]);

/** Viewer link of a table row: the image, this project's terms, the annotation selected. */
export function viewerHref(projectId, row) {
  return `/viewer/${encodeURIComponent(row.image_id)}?project=${encodeURIComponent(projectId)}#annotation-${row.id}`;
}

export function setupProjectTable(projectId, { role, isAdmin }) {
  const pid = encodeURIComponent(projectId);
  const holder = el("div", { id: "project-table-holder" });
  const box = el("details", { id: "project-table-box", class: "card" },
    el("summary", {}, "Annotation table: every annotation of the project"), holder);
  let table = null;
  box.addEventListener("toggle", async () => {
    if (!box.open || table) return;
    holder.replaceChildren(el("p", { class: "muted" }, "Loading…"));
    const [images, terms, review] = await Promise.all([
      api(`projects/${pid}/images?limit=500&sort=name`).then(items).catch(() => []),
      api(`projects/${pid}/terms`).then(items).catch(() => []),
      api(`projects/${pid}/review`).catch(() => null),
    ]);
    const byTerm = new Map(terms.map((t) => [t.id, t]));
    holder.replaceChildren();
    table = new AnnotationTable({
      base: `projects/${projectId}`, container: holder, boxId: "project-table",
      boxClass: "anno-table project-anno-table", title: "All annotations of the project",
      projectId, images: images.map((im) => ({ id: im.id, name: im.name })),
      terms: () => terms,
      termName: (id) => (byTerm.get(id) ? byTerm.get(id).name : `term ${id}`),
      authors: async () => items(await api(`projects/${pid}/members?limit=500`))
        .map((m) => ({ user_id: m.user_id, name: m.username })),
      canReview: () => Boolean(review && review.requires_review) && (isAdmin || REVIEWERS.has(role)),
      viewerHref: (row) => viewerHref(projectId, row),
      openRow: (row) => location.assign(viewerHref(projectId, row)),
    });
    window.microtome = window.microtome || {};
    window.microtome.projectTable = table;
    table.toggle(true);
  });
  const after = document.querySelector("#project-annotations") || document.querySelector("section[aria-labelledby=images-title]");
  after.after(box);
}
