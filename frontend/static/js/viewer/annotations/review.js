// Review in the viewer: the project's setting (requires review), whether the
// user may review (project reviewers and managers), and the controls shown
// with the selected annotation: its review state, Accept (with the term
// chosen in the selection's term list) and Reject (with a reason).  A review
// names the version it saw; when the annotation changed meanwhile the server
// answers 409 with the current version, which is shown for another look.
import { api } from "../../api.js";
import { el, formatDate, toast } from "../../ui.js";

export class Review {
  /** @param ctx {imageId, projectId, role, user, terms() → [{id,name}], onReviewed(feature)} */
  constructor(ctx) {
    this.ctx = ctx;
    this.requires = false;
    // The image's review state: "reviewed" when nothing is pending.
    this.badge = el("p", { id: "image-review", class: "muted", hidden: true });
  }

  async refreshImage() {
    if (!this.requires) { this.badge.hidden = true; return; }
    try {
      const q = this.ctx.projectId ? `project=${encodeURIComponent(this.ctx.projectId)}` : "";
      const r = await api(`images/${this.ctx.imageId}/review?${q}`, { noRedirect: true });
      this.badge.hidden = false;
      this.badge.className = r.reviewed ? "review accepted" : "review pending";
      this.badge.textContent = r.reviewed ? `Reviewed: ${r.accepted} accepted, ${r.rejected} rejected`
        : `Review: ${r.pending} pending, ${r.accepted} accepted, ${r.rejected} rejected`;
    } catch { this.badge.hidden = true; }
  }

  async load() {
    if (!this.ctx.projectId) return;
    try {
      const r = await api(`projects/${encodeURIComponent(this.ctx.projectId)}/review`, { noRedirect: true });
      this.requires = Boolean(r.requires_review);
    } catch { this.requires = false; }
  }

  get canReview() {
    const { role, user } = this.ctx;
    return Boolean(this.ctx.projectId) && (role === "reviewer" || role === "manager" || Boolean(user && user.is_admin));
  }

  /** Controls for one selected (saved) annotation, from its full record. */
  controls(full) {
    if (!full || !(full.id > 0) || !this.requires) return null;
    const p = full.properties || {};
    const status = p.review_status || "pending";
    const info = el("p", { id: "review-status", class: `review ${status}` },
      `Review: ${status}`, p.reviewed_at ? el("span", { class: "muted" }, ` (${formatDate(p.reviewed_at)})`) : null,
      p.review_reason ? el("span", { class: "muted" }, ` — ${p.review_reason}`) : null);
    if (!this.canReview || p.project_id === null || String(p.project_id) !== String(this.ctx.projectId)) return el("div", {}, info);
    const reason = el("input", { id: "review-reason", placeholder: "Reason to reject", maxlength: "2000", style: "flex:1;min-width:0" });
    const current = (p.terms || [])[0];
    const term = el("select", { id: "review-term", "aria-label": "Term to accept with" },
      el("option", { value: "" }, "No term"),
      this.ctx.terms().map((t) => el("option", { value: String(t.id), selected: t.id === current }, t.name)));
    const terms = () => (term.value ? [Number(term.value)] : []);
    const send = async (action) => {
      const body = { action, updated_at: p.updated_at };
      if (action === "accept") {
        const t = terms();
        if (JSON.stringify(t) !== JSON.stringify(p.terms || [])) body.terms = t;
      } else {
        if (!reason.value.trim()) { reason.focus(); toast("A rejection needs a reason", "error"); return; }
        body.reason = reason.value.trim();
      }
      try {
        const f = await api(`annotations/${full.id}/review`, { method: "POST", body, noRedirect: true });
        toast(action === "accept" ? "Accepted" : "Rejected");
        this.ctx.onReviewed(f);
      } catch (e) {
        if (e.status === 409 && e.detail && e.detail.current) {
          toast("The annotation changed since you saw it: here is the current version", "error");
          this.ctx.onReviewed(e.detail.current);
        } else toast(`Could not review: ${e.message}`, "error");
      }
    };
    return el("div", { id: "review-box" }, info,
      el("div", { class: "row" }, term,
        el("button", { type: "button", class: "primary", id: "review-accept", onclick: () => send("accept") }, "Accept")),
      el("div", { class: "row" }, reason,
        el("button", { type: "button", class: "danger", id: "review-reject", onclick: () => send("reject") }, "Reject")));
  }
}
