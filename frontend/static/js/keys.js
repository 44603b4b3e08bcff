// API keys (everyone) and users (administrators).
import { api, items } from "./api.js";
import { currentUser, el, formatDate, renderTopbar, toast } from "./ui.js";

const $ = (s) => document.querySelector(s);
let me = null;

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

async function loadUsers() {
  const users = items(await api("users?limit=500"));
  $("#users").replaceChildren(...users.map((u) => el("tr", {},
    el("td", {}, u.username), el("td", {}, u.is_admin ? "yes" : ""), el("td", {}, formatDate(u.created_at)),
    el("td", {}, u.last_login_at ? formatDate(u.last_login_at) : "never"),
    el("td", {}, u.disabled ? el("span", { class: "badge failed" }, "disabled") : el("span", { class: "badge ready" }, "active")),
    el("td", {}, u.id === me.id ? "" : el("span", { class: "row" },
      el("button", { type: "button", "aria-label": `${u.disabled ? "Enable" : "Disable"} user ${u.username}`, onclick: () => setDisabled(u, !u.disabled) }, u.disabled ? "Enable" : "Disable"),
      el("button", { type: "button", "aria-label": `Reset the password of ${u.username}`, onclick: () => resetPassword(u) }, "Reset password"),
      el("button", { type: "button", class: "danger", "aria-label": `Delete user ${u.username}`, onclick: () => deleteUser(u) }, "Delete"))))));
}

async function setDisabled(u, disabled) {
  if (disabled && !confirm(`Disable "${u.username}"? Their sessions and API keys end at once.`)) return;
  try { await api(`users/${u.id}`, { method: "PATCH", body: { disabled } }); await loadUsers(); } catch (e) { toast(e.message, "error"); }
}

/** A temporary password: 14 characters from an alphabet without look-alikes. */
function temporaryPassword() {
  const alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  const bytes = crypto.getRandomValues(new Uint8Array(14));
  return Array.from(bytes, (b) => alphabet[b % alphabet.length]).join("");
}

async function resetPassword(u) {
  if (!confirm(`Reset the password of "${u.username}"? Their sessions and API keys end; you get a temporary password to give them.`)) return;
  const password = temporaryPassword();
  try {
    await api(`users/${u.id}/password`, { method: "POST", body: { password } });
    $("#temp-password").replaceChildren(el("div", { class: "notice" },
      el("p", { style: "margin-top:0" }, `Temporary password of ${u.username} (shown once; ask them to change it on the API keys page after logging in):`),
      el("code", { class: "secret", id: "temp-password-value" }, password)));
  } catch (e) { toast(e.message, "error"); }
}

async function deleteUser(u) {
  if (!confirm(`Delete the user "${u.username}"?`)) return;
  try { await api(`users/${u.id}`, { method: "DELETE" }); await loadUsers(); } catch (e) { toast(e.message, "error"); }
}

async function main() {
  me = await currentUser();
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
  $("#password-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = e.target;
    try {
      await api("account/password", { method: "POST", body: { current_password: f.elements.current.value, new_password: f.elements.fresh.value } });
      f.reset();
      toast("Password changed; your other sessions have ended");
    } catch (ex) { toast(`Could not change the password: ${ex.message}`, "error"); }
  });
  await loadKeys();
  if (me.is_admin) {
    $("#users-section").hidden = false;
    $("#user-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const f = e.target;
      try {
        await api("users", { method: "POST", body: { username: f.elements.username.value.trim(), password: f.elements.password.value, is_admin: f.elements.is_admin.checked } });
        f.reset();
        toast("User added");
        await loadUsers();
      } catch (ex) { toast(`Could not add the user: ${ex.message}`, "error"); }
    });
    await loadUsers();
  }
}

main().catch((e) => toast(e.message, "error"));
