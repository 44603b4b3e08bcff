// One image in a grid: thumbnail, name, size, pixel size, status, actions.
import { el, statusBadge } from "./ui.js";
import { duplicateNote, failureDetails } from "./uploadcheck.js";

export function imageCard(im, actions = {}) {
  const id = encodeURIComponent(im.id);
  const ready = !im.status || im.status === "ready";
  // The project tells the viewer which terms (ontology) to offer.
  const href = `/viewer/${id}${actions.projectId ? `?project=${encodeURIComponent(actions.projectId)}` : ""}`;
  const thumb = ready
    ? el("img", { src: `/images/${id}/thumbnail.jpg?size=256${im.version ? `&v=${encodeURIComponent(im.version)}` : ""}`, alt: "", loading: "lazy" })
    : el("span", { class: "empty" }, im.status === "failed" ? "conversion failed" : "converting…");
  const dims = im.width && im.height ? `${Number(im.width).toLocaleString()} × ${Number(im.height).toLocaleString()} px` : "";
  const px = im.pixel_size_um ? `${Number(im.pixel_size_um).toPrecision(3)} µm/px` : "";
  const card = el("article", { class: "tile-card", "aria-label": im.name, dataset: { imageId: String(im.id) } },
    el("a", { class: "thumb", href, "aria-label": `Open ${im.name}` }, thumb),
    el("div", { class: "body" },
      el("a", { class: "name", href, title: im.name }, im.name),
      el("span", { class: "meta" }, [dims, px].filter(Boolean).join(" · ") || "\u00a0"),
      el("span", {}, statusBadge(im.status || "ready"), failureDetails(im.error)),
      duplicateNote(im, actions.projectId)),
  );
  const buttons = [];
  if (actions.onRetry && im.status === "failed") buttons.push(el("button", { type: "button", "aria-label": `Retry conversion of ${im.name}`, onclick: () => actions.onRetry(im) }, "Retry"));
  if (actions.onRename) buttons.push(el("button", { type: "button", "aria-label": `Rename ${im.name}`, onclick: () => actions.onRename(im) }, "Rename"));
  if (actions.onDelete && (actions.deleteAny !== false || im.status === "failed")) buttons.push(el("button", { type: "button", class: "danger", "aria-label": `Delete ${im.name}`, onclick: () => actions.onDelete(im) }, "Delete"));
  if (buttons.length) card.append(el("div", { class: "actions" }, buttons));
  return card;
}
