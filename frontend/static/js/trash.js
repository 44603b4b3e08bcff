// The trash page: what managers and administrators may restore or purge (issue 14).
import { api, items } from "./api.js";
import { describe } from "./deleting.js";
import { currentUser, el, formatDate, renderTopbar, toast } from "./ui.js";

const $ = (s) => document.querySelector(s);
const KIND = { project: "Project", image: "Image", annotations: "Annotations" };

function whatLink(item) {
  const label = `${KIND[item.kind] || item.kind}: ${item.name}`;
  return el("span", { class: "trash-name" }, label);
}

function row(item) {
  return el("tr", { dataset: { trashId: item.id } },
    el("td", {}, whatLink(item)),
    el("td", {}, describe(item.kind === "project" ? "project" : "image", {
      images: 0, members: 0, terms: 0, annotations: 0, authors: 0, ...item.summary })),
    el("td", {}, item.deleted_by_name || "(deleted user)"),
    el("td", {}, formatDate(item.deleted_at)),
    el("td", {}, formatDate(item.purge_after)),
    el("td", { class: "actions" },
      el("button", { type: "button", class: "primary", "aria-label": `Restore ${item.name}`, onclick: () => restore(item) }, "Restore"),
      el("button", { type: "button", class: "danger", "aria-label": `Purge ${item.name}`, onclick: () => purge(item) }, "Purge now")));
}

async function load() {
  const kind = $("#trash-kind").value;
  const list = items(await api(`trash?limit=500${kind ? `&kind=${kind}` : ""}`));
  $("#trash").replaceChildren(...(list.length ? list.map(row)
    : [el("tr", {}, el("td", { colspan: "6", class: "empty" }, "The trash is empty."))]));
}

function whereToGo(item) {
  if (item.kind === "project") return `/projects/${item.ids[0]}`;
  if (item.image_id) return `/viewer/${item.image_id}`;
  return null;
}

async function restore(item, force = false) {
  try {
    await api(`trash/${item.id}/restore` + (force ? "?force=true" : ""), { method: "POST" });
  } catch (e) {
    // A purged project or image: what belonged to it cannot come back; the rest can.
    if (e.status === 409 && !force && /was purged/.test(e.message)
        && confirm(`${e.message}\n\nRestore the rest?`)) return restore(item, true);
    toast(e.message, "error");
    return;
  }
  const href = whereToGo(item);
  toast(`Restored “${item.name}”`);
  const status = $("#trash-status") || el("p", { id: "trash-status", role: "status" });
  status.replaceChildren(`Restored “${item.name}”. `, href ? el("a", { href }, "Open it") : "");
  $("main").insertBefore(status, $("table.list"));
  await load();
}

async function purge(item) {
  if (!confirm(`Purge “${item.name}” now? It cannot be restored afterwards.`)) return;
  try { await api(`trash/${item.id}`, { method: "DELETE" }); await load(); } catch (e) { toast(e.message, "error"); }
}

async function main() {
  const me = await currentUser();
  renderTopbar(me);
  if (!me) { location.assign("/login?next=/trash"); return; }
  $("#trash-kind").addEventListener("change", () => load().catch((e) => toast(e.message, "error")));
  await load();
}

main().catch((e) => toast(e.message, "error"));
