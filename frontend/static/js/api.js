// Thin JSON client for /api: session cookie + CSRF header, errors as exceptions.

export const CSRF_HEADER = "X-CSRF-Token";

export class ApiError extends Error {
  constructor(status, message, detail) {
    super(message);
    this.status = status;
    this.detail = detail;
  }
}

let csrfToken = null;
let shareToken = null;

/** Remember the CSRF token a login/me response handed us. */
export function setCsrf(token) { csrfToken = token || null; }

/** Viewing through a share link: every API call carries its token. */
export function setShareToken(token) { shareToken = token || null; }
export const SHARE_HEADER = "X-Share-Token";

function csrf() {
  // Read the stored session each time: a login in another tab replaces the
  // token, and this page must keep working (e.g. to retry a failed save).
  try {
    const stored = JSON.parse(localStorage.getItem("microtome.session") || "null");
    if (stored && stored.csrf_token) return stored.csrf_token;
  } catch { /* fall back to the token handed to setCsrf */ }
  return csrfToken;
}

/** Headers every state-changing request needs. */
export function authHeaders(extra = {}) {
  const h = { ...extra };
  const token = csrf();
  if (token) h[CSRF_HEADER] = token;
  if (shareToken) h[SHARE_HEADER] = shareToken;
  return h;
}

/**
 * Call the API.  `opts.body` (object) is sent as JSON.  Throws ApiError with
 * the server's {"error","detail"}; a 401 on a page that needs a session sends
 * the user to the login page and back afterwards, unless opts.noRedirect.
 */
export async function api(path, opts = {}) {
  const { method = "GET", body, noRedirect = false, headers = {}, raw = false, signal } = opts;
  const init = { method, signal, credentials: "same-origin", headers: authHeaders({ Accept: "application/json", ...headers }) };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path.startsWith("/") ? path : `/api/${path}`, init);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "network error: the server could not be reached", String(e));
  }
  if (res.status === 401 && !noRedirect) {
    toLogin();
    throw new ApiError(401, "not logged in");
  }
  if (raw) return res;
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) {
    if (res.status === 403 && data && data.detail && data.detail.reason === PASSWORD_CHANGE_REASON) toPasswordChange();
    const msg = (data && (data.error || data.message)) || `${res.status} ${res.statusText}`;
    throw new ApiError(res.status, msg, data && data.detail);
  }
  return data;
}

/** The 403 reason while an administrator's reset asks for a new password first. */
export const PASSWORD_CHANGE_REASON = "password_change_required";

/** To My account, where the new password is set, and back here afterwards. */
export function toPasswordChange() {
  if (location.pathname === "/account") return;
  const next = location.pathname + location.search + location.hash;
  location.assign(`/account?next=${encodeURIComponent(next)}`);
}

export function toLogin() {
  localStorage.removeItem("microtome.session");
  const next = location.pathname + location.search + location.hash;
  if (location.pathname !== "/login") location.assign(`/login?next=${encodeURIComponent(next)}`);
}

/** Items of a list response, whatever envelope the endpoint uses. */
export function items(data) {
  if (Array.isArray(data)) return data;
  if (!data || typeof data !== "object") return [];
  for (const k of ["items", "results", "data", "images", "projects", "annotations", "terms", "users", "keys", "members", "features"]) {
    if (Array.isArray(data[k])) return data[k];
  }
  return [];
}
