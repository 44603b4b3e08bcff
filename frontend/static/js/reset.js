// The page of a one-time password reset link: /reset#token=...  The token stays
// in the fragment (never sent in a URL to the server, nor in a Referer).
import { api } from "./api.js";
import { saveSession } from "./ui.js";

const $ = (s) => document.querySelector(s);
const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";

function fail(message) {
  $("#reset-intro").hidden = true;
  $("#reset-form").hidden = true;
  $("#reset-error").textContent = message;
}

async function init() {
  if (!token) { fail("This link has no reset token. Ask an administrator for a new link."); return; }
  try {
    const info = await api("password-reset/check", { method: "POST", body: { token }, noRedirect: true });
    $("#reset-intro").textContent = `Choose the new password of ${info.username}. The link works once.`;
    $("#reset-form").hidden = false;
    $("#reset-login").href = `/login?next=/`;
    $("#reset-password").focus();
  } catch (e) {
    fail(e.status === 400 ? "This link is damaged (copy it whole). Ask an administrator for a new one if it still fails." : e.message);
  }
}

$("#reset-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = e.target;
  $("#reset-error").textContent = "";
  if (f.elements.password.value !== f.elements.password2.value) { $("#reset-error").textContent = "The passwords differ."; return; }
  if (f.elements.password.value.length < 8) { $("#reset-error").textContent = "The password needs at least 8 characters."; return; }
  $("#reset-submit").disabled = true;
  try {
    await api("password-reset", { method: "POST", body: { token, new_password: f.elements.password.value }, noRedirect: true });
  } catch (ex) {
    $("#reset-error").textContent = ex.message;
    $("#reset-submit").disabled = false;
    return;
  }
  saveSession(null); // any session of this browser has ended
  history.replaceState(null, "", "/reset");
  $("#reset-form").hidden = true;
  $("#reset-intro").hidden = true;
  $("#reset-done").hidden = false;
});

init();
