// Share links the user may manage: list and revoke (issue 11).
import { api, items } from "./api.js";
import { currentUser, el, formatDate, renderTopbar, toast } from "./ui.js";

const $ = (s) => document.querySelector(s);

function status(link) {
  if (link.revoked_at) return el("span", { class: "badge failed" }, "revoked");
  if (new Date(link.expires_at) <= new Date()) return el("span", { class: "badge" }, "expired");
  return el("span", { class: "badge ready" }, "active");
}

function target(link) {
  return link.image_id
    ? el("a", { href: `/viewer/${link.image_id}` }, `image ${link.image_id}`)
    : el("a", { href: `/projects/${link.project_id}` }, `project ${link.project_id}`);
}

async function load() {
  const active = $("#only-active").checked ? "&active=true" : "";
  const links = items(await api(`share-links?limit=500${active}`));
  $("#links").replaceChildren(...(links.length ? links.map((l) => el("tr", {},
    el("td", {}, target(l)), el("td", {}, l.created_by_name || "(deleted user)"),
    el("td", {}, formatDate(l.created_at)), el("td", {}, formatDate(l.expires_at)),
    el("td", {}, l.last_used_at ? formatDate(l.last_used_at) : "never"),
    el("td", {}, status(l)),
    el("td", {}, l.revoked_at ? "" : el("button", { type: "button", class: "danger", "aria-label": `Revoke link ${l.id}`, onclick: () => revoke(l) }, "Revoke"))))
    : [el("tr", {}, el("td", { colspan: "7", class: "empty" }, "No share links."))]));
}

async function revoke(link) {
  if (!confirm("Revoke this link? Everyone using it loses access at once.")) return;
  try { await api(`share-links/${link.id}`, { method: "DELETE" }); await load(); } catch (e) { toast(e.message, "error"); }
}

async function main() {
  const me = await currentUser();
  renderTopbar(me);
  if (!me) { location.assign("/login?next=/links"); return; }
  $("#only-active").addEventListener("change", () => load().catch((e) => toast(e.message, "error")));
  await load();
}

main().catch((e) => toast(e.message, "error"));
