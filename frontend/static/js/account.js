// My account (every signed-in user): password, sessions, API keys.  Also where a
// user whose account an administrator reset must choose a new password first.
import { api, items } from "./api.js";
import { safeNext } from "./nexturl.js";
import { currentUser, el, formatDate, renderTopbar, saveSession, toast } from "./ui.js";

const $ = (s) => document.querySelector(s);
let me = null;

async function loadSessions() {
  const sessions = items(await api("account/sessions?limit=500"));
  $("#sessions").replaceChildren(...sessions.map((s) => el("tr", {},
    el("td", {}, formatDate(s.created_at)), el("td", {}, formatDate(s.last_seen_at)),
    el("td", {}, formatDate(s.expires_at)), el("td", {}, s.current ? el("span", { class: "badge ready" }, "this browser") : ""))));
}

async function loadKeys() {
  const keys = items(await api("api-keys?limit=500"));
  $("#my-keys").replaceChildren(...(keys.length ? keys.map((k) => el("tr", {},
    el("td", {}, k.name), el("td", {}, formatDate(k.created_at)),
    el("td", {}, k.last_used_at ? formatDate(k.last_used_at) : "never"),
    el("td", {}, k.revoked_at ? el("span", { class: "badge failed" }, "revoked") : el("span", { class: "badge ready" }, "active"))))
    : [el("tr", {}, el("td", { colspan: "4", class: "empty" }, "No API keys."))]));
}

function showInfo() {
  $("#account-info").textContent = `${me.username} · ${me.is_admin ? "administrator" : "user"} · account created ${formatDate(me.created_at)} · last login ${me.last_login_at ? formatDate(me.last_login_at) : "never"}`;
  const forced = Boolean(me.must_change_password);
  $("#must-change").hidden = !forced;
  $("#account-more").hidden = forced;
  $("#password-intro").textContent = forced ? "Your current password is the one you signed in with (the temporary one, if you were given one)."
    : "Changing it signs you out everywhere else.";
}

async function changePassword(e) {
  e.preventDefault();
  const f = e.target;
  const err = $("#password-error");
  err.textContent = "";
  if (f.elements.fresh.value !== f.elements.fresh2.value) { err.textContent = "The new passwords differ."; return; }
  if (f.elements.fresh.value.length < 8) { err.textContent = "The new password needs at least 8 characters."; return; }
  try {
    await api("account/password", { method: "POST", body: { current_password: f.elements.current.value, new_password: f.elements.fresh.value } });
  } catch (ex) {
    err.textContent = ex.status === 403 && /current password/.test(ex.message) ? "The current password is wrong." : ex.message;
    return;
  }
  f.reset();
  const wasForced = me.must_change_password;
  const session = await api("session");
  saveSession(session);
  me = session.user;
  if (wasForced) {
    location.assign(safeNext(new URLSearchParams(location.search).get("next") || "/", location.origin));
    return;
  }
  toast("Password changed; your other sessions have ended");
  showInfo();
  await loadSessions();
}

async function signOutEverywhere() {
  if (!confirm("Sign out everywhere, this browser included? API keys keep working.")) return;
  try { await api("account/sessions", { method: "DELETE", noRedirect: true }); } catch (e) { toast(e.message, "error"); return; }
  saveSession(null);
  location.assign("/login");
}

async function main() {
  me = await currentUser();
  renderTopbar(me);
  if (!me) { location.assign("/login?next=/account"); return; }
  showInfo();
  $("#password-form").addEventListener("submit", changePassword);
  $("#sign-out-everywhere").addEventListener("click", signOutEverywhere);
  if (!me.must_change_password) await Promise.all([loadSessions(), loadKeys()]);
}

main().catch((e) => toast(e.message, "error"));
