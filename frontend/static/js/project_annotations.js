// The project's annotations on the project page: counts and areas per term
// per image (GET /api/projects/{id}/annotations/stats), with exports of the
// whole project's table as CSV, GeoJSON or Excel (optionally only reviewed).
import { api } from "./api.js";
import { el } from "./ui.js";

export function setupProjectAnnotations(projectId) {
  const pid = encodeURIComponent(projectId);
  const body = el("div", { id: "project-stats-body" });
  const reviewed = el("input", { type: "checkbox", id: "project-export-reviewed" });
  const links = el("span", { class: "row", style: "gap:.4rem" });
  const renderLinks = () => links.replaceChildren(...["csv", "geojson", "xlsx"].map((fmt) => el("a", {
    class: "button", id: `project-export-${fmt}`, download: `project-${projectId}-annotations.${fmt}`,
    href: `/api/projects/${pid}/annotations/table/export?format=${fmt}${reviewed.checked ? "&reviewed=true" : ""}`,
  }, fmt === "xlsx" ? "Excel" : fmt.toUpperCase())));
  reviewed.addEventListener("change", renderLinks);
  renderLinks();
  const box = el("details", { id: "project-annotations", class: "card" },
    el("summary", {}, "Annotations: statistics and exports"),
    el("div", { class: "row", style: "margin:.5rem 0;gap:.6rem" }, links,
      el("label", { for: "project-export-reviewed", style: "margin:0;display:flex;gap:.3rem;align-items:center" }, reviewed, "Reviewed only")),
    body);
  box.addEventListener("toggle", async () => {
    if (!box.open) return;
    body.replaceChildren(el("p", { class: "muted" }, "Loading…"));
    try {
      const { items } = await api(`projects/${pid}/annotations/stats`);
      const n = (v) => (v === null || v === undefined ? "" : Number(v).toLocaleString("en", { maximumFractionDigits: 1 }));
      body.replaceChildren(items.length ? el("table", { class: "stats" },
        el("thead", {}, el("tr", {}, ["Image", "Term", "Count", "Area µm²"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, items.map((r) => el("tr", {}, el("td", {}, r.image_name), el("td", {}, r.term_name || "—"),
          el("td", { class: "num" }, n(r.count)), el("td", { class: "num" }, n(r.area_um2_sum))))))
        : el("p", { class: "muted" }, "No annotations yet."));
    } catch (e) { body.replaceChildren(el("p", { class: "error" }, `Could not load the statistics: ${e.message}`)); }
  });
  document.querySelector("section[aria-labelledby=images-title]").after(box);
}
