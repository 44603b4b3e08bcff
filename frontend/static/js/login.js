// Login, or first-run setup of the administrator account when no user exists.
import { api } from "./api.js";
import { safeNext } from "./nexturl.js";
import { saveSession } from "./ui.js";

const $ = (s) => document.querySelector(s);
const form = $("#login-form");
let setup = false;

function nextUrl() {
  // Only same-origin paths: never bounce to another site.
  return safeNext(new URLSearchParams(location.search).get("next") || "/", location.origin);
}

async function init() {
  try {
    const status = await api("setup", { noRedirect: true });
    setup = Boolean(status && status.needs_setup);
  } catch (e) {
    $("#login-error").textContent = `The server cannot be reached: ${e.message}`;
  }
  if (setup) {
    $("#login-title").textContent = "Create the administrator account";
    $("#login-intro").textContent = "This Microtome has no users yet. The account you create now can add users and manage every project.";
    $("#login-intro").hidden = false;
    $("#confirm-row").hidden = false;
    $("#password").autocomplete = "new-password";
    $("#password2").required = true;
    $("#password").placeholder = "8 characters or more";
    $("#login-submit").textContent = "Create account";
  }
  $("#username").focus();
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const err = $("#login-error");
  err.textContent = "";
  const username = form.elements.username.value.trim();
  const password = form.elements.password.value;
  if (setup && password !== form.elements.password2.value) {
    err.textContent = "The passwords differ.";
    return;
  }
  if (setup && password.length < 8) {
    err.textContent = "The password needs at least 8 characters.";
    return;
  }
  $("#login-submit").disabled = true;
  try {
    const res = await api(setup ? "setup" : "session", { method: "POST", body: { username, password }, noRedirect: true });
    saveSession(res);
    // Reset by an administrator: the new password comes first.
    location.assign(res.user.must_change_password ? `/account?next=${encodeURIComponent(nextUrl())}` : nextUrl());
  } catch (ex) {
    err.textContent = ex.status === 401 ? "Wrong user name or password."
      : ex.status === 429 ? `Too many failed attempts. Try again in ${waitText(ex.detail && ex.detail.retry_after)}.`
        : ex.message;
    $("#login-submit").disabled = false;
  }
});

/** The server's Retry-After seconds, in words. */
function waitText(seconds) {
  const s = Math.max(1, Number(seconds) || 60);
  if (s < 90) return `${s} seconds`;
  return `${Math.ceil(s / 60)} minutes`;
}

init();
