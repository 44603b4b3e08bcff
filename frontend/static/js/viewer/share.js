// Share links: a dialog that creates one for the current image, and the
// resolution of /share/{token} pages into an image id + tile token.
import { api, setShareToken } from "../api.js";
import { el, toast } from "../ui.js";

export async function resolveShare(token) {
  setShareToken(token);
  try {
    const data = await api("share", { noRedirect: true });
    const imageId = data && (data.image_id ?? (data.image && data.image.id));
    if (imageId === undefined || imageId === null) return null;
    return { imageId: String(imageId), token: data.token || token };
  } catch {
    return null;
  }
}

export function setupShare(state) {
  const button = document.querySelector("#share");
  if (!state.user || state.token) return;
  button.hidden = false;
  button.onclick = () => openDialog(state);
}

function openDialog(state) {
  const dlg = document.querySelector("#share-dialog");
  const out = el("div", { "aria-live": "polite" });
  const days = el("input", { id: "share-days", type: "number", min: "1", max: "365", value: "7" });
  dlg.replaceChildren(
    el("h2", { id: "share-title" }, "Share this image"),
    el("p", { class: "muted" }, "Anyone with the link can view the slide (read-only), without an account, until it expires."),
    el("label", { for: "share-days" }, "Valid for (days)"), days,
    out,
    el("div", { class: "buttons" },
      el("button", { type: "button", onclick: () => dlg.close() }, "Close"),
      el("button", { type: "button", class: "primary", id: "share-create", onclick: create }, "Create link")),
  );
  dlg.showModal();

  async function create() {
    try {
      const res = await api(`images/${encodeURIComponent(state.id)}/shares`, {
        method: "POST", body: { expires_in_days: Number(days.value) || 7 },
      });
      const url = res.url ? new URL(res.url, location.origin).toString() : `${location.origin}/share/${encodeURIComponent(res.token)}`;
      const input = el("input", { id: "share-url", type: "text", readonly: true, value: url, "aria-label": "Share link", style: "width:100%" });
      out.replaceChildren(el("label", { for: "share-url" }, "Link"), input);
      input.select();
      try { await navigator.clipboard.writeText(url); toast("Share link copied"); } catch { /* shown in the field */ }
    } catch (e) {
      out.replaceChildren(el("p", { class: "error" }, `Could not create a link: ${e.message}`));
    }
  }
}
