// Small DOM helpers shared by the pages.
import { api, setCsrf, toPasswordChange } from "./api.js";

/** el("button", {class: "x", onclick: f}, "text", child) → element. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (v === true) node.setAttribute(k, "");
    else node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

let toastTimer = null;
export function toast(message, kind = "") {
  let t = document.querySelector(".toast");
  if (!t) {
    t = el("div", { class: "toast", role: "status", "aria-live": "polite" });
    document.body.append(t);
  }
  t.className = `toast ${kind}`;
  t.textContent = message;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, kind === "error" ? 6000 : 2500);
}

export function formatBytes(n) {
  if (n === undefined || n === null) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${v.toFixed(v >= 10 || i === 0 ? 0 : 1)} ${units[i]}`;
}

/** A length in µm as a readable string (nm, µm, mm). */
export function formatLength(um) {
  if (!Number.isFinite(um)) return "";
  if (um >= 1000) return `${(um / 1000).toPrecision(3)} mm`;
  if (um < 1) return `${(um * 1000).toPrecision(3)} nm`;
  return `${um.toPrecision(3)} µm`;
}

export function formatArea(um2) {
  if (!Number.isFinite(um2)) return "";
  if (um2 >= 1e6) return `${(um2 / 1e6).toPrecision(3)} mm²`;
  return `${um2.toPrecision(3)} µm²`;
}

export function formatDate(s) {
  if (!s) return "";
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? String(s) : d.toLocaleString();
}

const SESSION_KEY = "microtome.session";

/** The session remembered at login ({user, csrf_token}); the cookie itself is HttpOnly. */
export function storedSession() {
  try { return JSON.parse(localStorage.getItem(SESSION_KEY) || "null"); } catch { return null; }
}

export function saveSession(data) {
  if (!data) { localStorage.removeItem(SESSION_KEY); setCsrf(null); return; }
  localStorage.setItem(SESSION_KEY, JSON.stringify({ user: data.user, csrf_token: data.csrf_token }));
  setCsrf(data.csrf_token);
}

/**
 * The logged-in user, or null.  Only asks the server when this browser
 * logged in before, so anonymous visitors cause no failing request.
 */
export async function currentUser() {
  const stored = storedSession();
  if (!stored) return null;
  setCsrf(stored.csrf_token);
  try {
    const me = await api("session", { noRedirect: true });
    saveSession(me);
    if (me.user.must_change_password) toPasswordChange();
    return me.user;
  } catch (e) {
    if (e.status === 401) { saveSession(null); return null; }
    return stored.user; // server unreachable: keep going, requests will tell
  }
}

/** Fill the page's <header class="topbar"> with navigation and the user menu. */
export function renderTopbar(user) {
  const bar = document.querySelector("header.topbar");
  if (!bar) return;
  bar.replaceChildren(
    el("a", { class: "brand", href: "/" }, el("img", { src: "/static/img/favicon.svg", alt: "" }), "Microtome"),
    el("nav", { "aria-label": "Main" },
      user ? el("a", { href: "/" }, "Projects") : null,
      user ? el("a", { href: "/keys" }, "API keys") : null,
      user ? el("a", { href: "/links" }, "Share links") : null,
      user ? el("a", { href: "/trash" }, "Trash") : null,
      user && user.is_admin ? el("a", { href: "/users" }, "Users") : null,
      user ? el("a", { href: "/account" }, "My account") : null),
    el("div", { class: "who" },
      user ? el("span", {}, user.username || user.name || "") : null,
      user ? el("button", { type: "button", onclick: logout }, "Log out")
        : el("a", { href: `/login?next=${encodeURIComponent(location.pathname + location.search)}` }, "Log in")),
  );
}

async function logout() {
  try { await api("session", { method: "DELETE", noRedirect: true }); } catch { /* already gone */ }
  saveSession(null);
  location.assign("/login");
}

/** The numeric/opaque id at the end of /kind/{id}, or the ?id= parameter. */
export function idFromPath(kind) {
  const m = location.pathname.match(new RegExp(`^/${kind}/([^/]+)`));
  if (m) return decodeURIComponent(m[1]);
  return new URLSearchParams(location.search).get("id");
}

export function statusBadge(status) {
  const s = String(status || "unknown").toLowerCase();
  return el("span", { class: `badge ${s}` }, s);
}
