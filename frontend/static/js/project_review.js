// Review on the project page: the managers' "requires review" switch, and on
// each image card of the grid its review state ("reviewed" when nothing is
// pending) with the pending / accepted / rejected counts.
import { api } from "./api.js";
import { el, toast } from "./ui.js";

let summary = null;

/** The switch (managers) above the grid; `reload()` redraws the grid. */
export async function setupReview(projectId, manager, reload) {
  try { summary = await api(`projects/${encodeURIComponent(projectId)}/review`); } catch { summary = null; return; }
  const grid = document.querySelector("#grid");
  const box = el("span", { class: "row review-setting", id: "review-setting" });
  if (manager) {
    const sw = el("input", { type: "checkbox", id: "requires-review", checked: summary.requires_review });
    sw.addEventListener("change", async () => {
      try {
        summary = await api(`projects/${encodeURIComponent(projectId)}/review`, { method: "PUT", body: { requires_review: sw.checked } });
        toast(sw.checked ? "Annotations by contributors now need review" : "Review is no longer required");
        reload();
      } catch (e) { sw.checked = !sw.checked; toast(`Could not change the setting: ${e.message}`, "error"); }
    });
    box.append(el("label", { for: "requires-review", style: "margin:0;display:flex;gap:.3rem;align-items:center" }, sw, "Requires review"));
  } else if (summary.requires_review) {
    box.append(el("span", { class: "muted" }, "Annotations in this project are reviewed"));
  }
  grid.before(box);
}

/** Review badges on the grid's cards (after each listing). */
export async function decorateGrid(projectId) {
  try { summary = await api(`projects/${encodeURIComponent(projectId)}/review`); } catch { return; }
  if (!summary.requires_review) return;
  const byId = new Map(summary.images.map((s) => [String(s.image_id), s]));
  for (const card of document.querySelectorAll("#grid .tile-card[data-image-id]")) {
    const s = byId.get(card.dataset.imageId);
    if (!s) continue;
    const old = card.querySelector(".review-badge");
    if (old) old.remove();
    const text = s.reviewed ? `reviewed · ${s.accepted} accepted, ${s.rejected} rejected`
      : `${s.pending} pending · ${s.accepted} accepted, ${s.rejected} rejected`;
    card.querySelector(".body").append(el("span", { class: `review-badge review ${s.reviewed ? "accepted" : "pending"}`, dataset: { reviewed: String(s.reviewed) } }, text));
  }
}
