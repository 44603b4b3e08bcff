// Share links: a dialog that creates one for the current image, and the
// resolution of /share/{token} pages into an image id + tile token.
import { api, setShareToken } from "../api.js";
import { el, toast } from "../ui.js";

/**
 * What a share token grants: {imageId, token, images}.  An image link names
 * its image; a project link lists the project's images to choose from.
 */
export async function resolveShare(token) {
  setShareToken(token);
  try {
    const data = await api("share", { noRedirect: true });
    const imageId = data && data.image_id;
    return { imageId: imageId === null || imageId === undefined ? null : String(imageId), token, images: (data && data.images) || [] };
  } catch {
    return null;
  }
}

/** The Share button, for those allowed to make image links (contributors and
 *  up on the project the viewer was opened from; admins always). */
export function setupShare(state, { role = null, projectId = null } = {}) {
  const button = document.querySelector("#share");
  if (!state.user || state.token) return;
  if (projectId && !state.user.is_admin && role === "viewer") return;
  button.hidden = false;
  button.onclick = () => openShareDialog({ image_id: Number(state.id) }, "this image");
}

/** The share-link dialog for {image_id} or {project_id}. */
export function openShareDialog(target, what) {
  const dlg = document.querySelector("#share-dialog");
  const out = el("div", { "aria-live": "polite" });
  const days = el("input", { id: "share-days", type: "number", min: "1", max: "365", value: "7" });
  dlg.replaceChildren(
    el("h2", { id: "share-title" }, `Share ${what}`),
    el("p", { class: "muted" }, "Anyone with the link can view (read-only), without an account, until it expires."),
    el("label", { for: "share-days" }, "Valid for (days)"), days,
    out,
    el("div", { class: "buttons" },
      el("button", { type: "button", onclick: () => dlg.close() }, "Close"),
      el("button", { type: "button", class: "primary", id: "share-create", onclick: create }, "Create link")),
  );
  dlg.showModal();

  async function create() {
    try {
      const d = Math.min(365, Math.max(1, Number(days.value) || 7));
      const res = await api("share-links", { method: "POST", body: { ...target, expires_in: d * 86400 } });
      const url = new URL(res.url, location.origin).toString();
      const input = el("input", { id: "share-url", type: "text", readonly: true, value: url, "aria-label": "Share link", style: "width:100%" });
      out.replaceChildren(el("label", { for: "share-url" }, "Link"), input);
      input.select();
      try { await navigator.clipboard.writeText(url); toast("Share link copied"); } catch { /* shown in the field */ }
    } catch (e) {
      out.replaceChildren(el("p", { class: "error" }, `Could not create a link: ${e.message}`));
    }
  }
}
