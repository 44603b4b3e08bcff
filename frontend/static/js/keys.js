// API keys (everyone).  Users are on /users, the password on /account.
import { api, items } from "./api.js";
import { currentUser, el, formatDate, renderTopbar, toast } from "./ui.js";

const $ = (s) => document.querySelector(s);

async function loadKeys() {
  const keys = items(await api("api-keys?limit=500"));
  $("#keys").replaceChildren(...(keys.length ? keys.map((k) => el("tr", {},
    el("td", {}, k.name), el("td", {}, el("code", {}, `${k.prefix}…`)),
    el("td", {}, formatDate(k.created_at)), el("td", {}, k.last_used_at ? formatDate(k.last_used_at) : "never"),
    el("td", {}, k.revoked_at ? el("span", { class: "badge failed" }, "revoked") : el("span", { class: "badge ready" }, "active")),
    el("td", {}, k.revoked_at ? "" : el("button", { type: "button", class: "danger", "aria-label": `Revoke key ${k.name}`, onclick: () => revoke(k) }, "Revoke"))))
    : [el("tr", {}, el("td", { colspan: "6", class: "empty" }, "No API keys yet."))]));
}

async function revoke(k) {
  if (!confirm(`Revoke the key "${k.name}"? Scripts using it stop working.`)) return;
  try { await api(`api-keys/${k.id}`, { method: "DELETE" }); await loadKeys(); } catch (e) { toast(e.message, "error"); }
}

async function main() {
  const me = await currentUser();
  renderTopbar(me);
  if (!me) { location.assign("/login?next=/keys"); return; }
  $("#key-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = e.target;
    try {
      const k = await api("api-keys", { method: "POST", body: { name: form.elements.name.value.trim() } });
      form.reset();
      $("#new-key").replaceChildren(el("div", { class: "notice" },
        el("p", { style: "margin-top:0" }, "Copy this key now; it will not be shown again:"),
        el("code", { class: "secret", id: "new-key-value" }, k.key)));
      await loadKeys();
    } catch (ex) { toast(`Could not create the key: ${ex.message}`, "error"); }
  });
  await loadKeys();
}

main().catch((e) => toast(e.message, "error"));
