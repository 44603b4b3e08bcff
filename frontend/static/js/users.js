// Users page (administrators): accounts, roles, disable/enable, password resets.
import { api, items } from "./api.js";
import { currentUser, el, formatDate, renderTopbar, toast } from "./ui.js";

const $ = (s) => document.querySelector(s);
let me = null;

function statusOf(u) {
  if (u.disabled) return el("span", { class: "badge failed" }, "disabled");
  if (u.must_change_password) return el("span", { class: "badge pending" }, "must change password");
  return el("span", { class: "badge ready" }, "active");
}

function roleCell(u) {
  if (u.id === me.id) return el("span", {}, "administrator (you)");
  const select = el("select", { "aria-label": `Role of ${u.username}`, onchange: (e) => setRole(u, e.target.value === "admin", e.target) },
    el("option", { value: "user", selected: !u.is_admin }, "user"),
    el("option", { value: "admin", selected: u.is_admin }, "administrator"));
  return select;
}

async function loadUsers() {
  const users = items(await api("users?limit=500"));
  $("#users").replaceChildren(...users.map((u) => el("tr", { dataset: { user: u.username } },
    el("td", {}, u.username), el("td", {}, roleCell(u)), el("td", {}, formatDate(u.created_at)),
    el("td", {}, u.last_login_at ? formatDate(u.last_login_at) : "never"),
    el("td", {}, statusOf(u)),
    el("td", {}, u.id === me.id ? el("a", { href: "/account" }, "My account") : el("span", { class: "row" },
      el("button", { type: "button", "aria-label": `${u.disabled ? "Enable" : "Disable"} user ${u.username}`, onclick: () => setDisabled(u, !u.disabled) }, u.disabled ? "Enable" : "Disable"),
      el("button", { type: "button", "aria-label": `Reset link for ${u.username}`, onclick: () => resetLink(u) }, "Reset link"),
      el("button", { type: "button", "aria-label": `Temporary password for ${u.username}`, onclick: () => temporaryReset(u) }, "Temporary password"),
      el("button", { type: "button", class: "danger", "aria-label": `Delete user ${u.username}`, onclick: () => deleteUser(u) }, "Delete"))))));
}

async function setRole(u, isAdmin, select) {
  const what = isAdmin ? `make "${u.username}" an administrator` : `take the administrator role from "${u.username}"`;
  if (!confirm(`Really ${what}?`)) { select.value = u.is_admin ? "admin" : "user"; return; }
  try { await api(`users/${u.id}`, { method: "PATCH", body: { is_admin: isAdmin } }); toast("Role changed"); } catch (e) { toast(e.message, "error"); }
  await loadUsers();
}

async function setDisabled(u, disabled) {
  if (disabled && !confirm(`Disable "${u.username}"? Their sessions and API keys end at once.`)) return;
  try { await api(`users/${u.id}`, { method: "PATCH", body: { disabled } }); await loadUsers(); } catch (e) { toast(e.message, "error"); }
}

function showResult(...children) {
  $("#reset-result").replaceChildren(el("div", { class: "notice" }, ...children));
}

async function resetLink(u) {
  if (!confirm(`Make a reset link for "${u.username}"? Their sessions and API keys end, earlier links stop working, and they must set a new password.`)) return;
  try {
    const link = await api(`users/${u.id}/reset-link`, { method: "POST" });
    const input = el("input", { id: "reset-link-value", readonly: true, value: link.url, style: "width:100%", "aria-label": `Reset link for ${u.username}` });
    showResult(
      el("p", { style: "margin-top:0" }, `One-time link for ${u.username} (shown once; works once, until ${formatDate(link.expires_at)}). Send it to them by a channel you trust:`),
      input,
      el("p", {}, el("button", { type: "button", onclick: () => copy(input) }, "Copy link")));
    input.select();
    await loadUsers();
  } catch (e) { toast(e.message, "error"); }
}

async function copy(input) {
  try { await navigator.clipboard.writeText(input.value); toast("Copied"); } catch { input.select(); toast("Press Ctrl+C to copy"); }
}

/** A temporary password: 14 characters from an alphabet without look-alikes. */
function temporaryPassword() {
  const alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  const bytes = crypto.getRandomValues(new Uint8Array(14));
  return Array.from(bytes, (b) => alphabet[b % alphabet.length]).join("");
}

async function temporaryReset(u) {
  if (!confirm(`Give "${u.username}" a temporary password? Their sessions and API keys end; they must choose their own password when they next sign in.`)) return;
  const password = temporaryPassword();
  try {
    await api(`users/${u.id}/password`, { method: "POST", body: { password } });
    showResult(el("p", { style: "margin-top:0" }, `Temporary password of ${u.username} (shown once; they choose their own at the next sign-in):`),
      el("code", { class: "secret", id: "temp-password-value" }, password));
    await loadUsers();
  } catch (e) { toast(e.message, "error"); }
}

async function deleteUser(u) {
  if (!confirm(`Delete the user "${u.username}"?`)) return;
  try { await api(`users/${u.id}`, { method: "DELETE" }); await loadUsers(); } catch (e) { toast(e.message, "error"); }
}

async function main() {
  me = await currentUser();
  renderTopbar(me);
  if (!me) { location.assign("/login?next=/users"); return; }
  if (!me.is_admin) {
    document.querySelector("main").replaceChildren(el("h1", {}, "Users"), el("p", { class: "notice" }, "Only administrators manage users. Your own account is on "), el("a", { href: "/account" }, "My account"));
    return;
  }
  $("#user-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = e.target;
    try {
      await api("users", { method: "POST", body: { username: f.elements.username.value.trim(), password: f.elements.password.value, is_admin: f.elements.is_admin.checked, must_change_password: f.elements.must_change.checked } });
      f.reset();
      toast("User added");
      await loadUsers();
    } catch (ex) { toast(`Could not add the user: ${ex.message}`, "error"); }
  });
  await loadUsers();
}

main().catch((e) => toast(e.message, "error"));
