// Live viewing: report this viewer's position (activity, and for followers), and
// "follow" mode: move with another user's live viewport (teaching).
import { api, items } from "../api.js";
import { el, toast } from "../ui.js";

const SEND_EVERY_MS = 2000; // the server samples at this rate anyway
const state = { ws: null, follow: null, followingId: null, lastSent: 0, pending: null };

function wsUrl(path) {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
}

function viewRect(viewer) {
  // The slide's own conversion: other layers (the retrieval heat map) may share the world.
  const r = viewer.world.getItemAt(0).viewportToImageRectangle(viewer.viewport.getBounds(true));
  return { x: r.x, y: r.y, w: r.width, h: r.height };
}

function startReporting(app) {
  const viewer = app.viewer;
  const ws = state.ws = new WebSocket(wsUrl(`/api/live?image_id=${encodeURIComponent(app.id)}`));
  const send = () => {
    state.pending = null;
    if (ws.readyState !== WebSocket.OPEN) return;
    state.lastSent = Date.now();
    ws.send(JSON.stringify(viewRect(viewer)));
  };
  const schedule = () => {
    if (state.pending) return;
    state.pending = setTimeout(send, Math.max(0, SEND_EVERY_MS - (Date.now() - state.lastSent)));
  };
  ws.addEventListener("open", send);
  viewer.addHandler("animation-finish", schedule);
  ws.addEventListener("message", (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === "followers") {
      const badge = document.querySelector("#live-followers");
      badge.hidden = msg.count === 0;
      badge.textContent = `${msg.count} following you`;
    }
  });
}

function stopFollowing(status) {
  if (state.follow) state.follow.close();
  state.follow = null;
  state.followingId = null;
  document.querySelector("#live-status").textContent = status || "";
  document.querySelector("#stop-follow").hidden = true;
}

export function follow(app, userId, username) {
  stopFollowing();
  const ws = state.follow = new WebSocket(wsUrl(`/api/users/${encodeURIComponent(userId)}/follow`));
  state.followingId = userId;
  const status = document.querySelector("#live-status");
  document.querySelector("#stop-follow").hidden = false;
  status.textContent = `Following ${username || `user ${userId}`}…`;
  ws.addEventListener("message", (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === "view") {
      status.textContent = `Following ${msg.username}`;
      if (String(msg.image_id) !== String(app.id)) {
        // The leader opened another image: go there, still following.
        location.assign(`/viewer/${encodeURIComponent(msg.image_id)}?follow=${encodeURIComponent(userId)}`);
        return;
      }
      if (msg.w > 0 && msg.h > 0) {
        const vp = app.viewer.viewport;
        vp.fitBounds(vp.imageToViewportRectangle(msg.x, msg.y, msg.w, msg.h));
        window.microtome.followed = (window.microtome.followed || 0) + 1;
      }
    } else if (msg.type === "hidden") {
      status.textContent = "The user you follow is on an image you cannot see.";
    } else if (msg.type === "offline") {
      status.textContent = "The user you follow closed the viewer; waiting…";
    }
  });
  ws.addEventListener("close", () => { if (state.follow === ws) stopFollowing("Following ended."); });
}

// Managers replay where someone looked: the recorded positions of one session, 4x faster.
// Sessions are asked for on demand (only managers may see them).
async function loadSessions(app, panel, button) {
  let sessions;
  try { sessions = items(await api(`images/${encodeURIComponent(app.id)}/activity/sessions`)); } catch (e) {
    toast(e.status === 403 ? "Only the image's managers can replay sessions." : e.message, "error");
    return;
  }
  button.remove();
  const select = el("select", { id: "replay-session", "aria-label": "Session to replay" },
    el("option", { value: "" }, sessions.length ? "Replay a session…" : "No sessions recorded yet"),
    ...sessions.filter((x) => x.views > 0).map((x) => el("option", { value: String(x.session_id) },
      `${x.username || "anonymous"} · ${new Date(x.opened_at).toLocaleString()} · ${x.views} views`)));
  select.addEventListener("change", async () => {
    if (!select.value) return;
    stopFollowing();
    const events = items(await api(`images/${encodeURIComponent(app.id)}/activity?session_id=${select.value}&limit=10000`))
      .filter((e) => e.kind === "view");
    const status = document.querySelector("#live-status");
    const vp = app.viewer.viewport;
    for (let i = 0; i < events.length; i++) {
      const e = events[i];
      status.textContent = `Replaying ${e.username || "anonymous"}: ${i + 1} of ${events.length} (${new Date(e.at).toLocaleTimeString()})`;
      vp.fitBounds(vp.imageToViewportRectangle(e.x, e.y, e.w, e.h));
      window.microtome.replayed = i + 1;
      const next = events[i + 1];
      if (next) await new Promise((r) => setTimeout(r, Math.min(2000, (new Date(next.at) - new Date(e.at)) / 4)));
    }
    status.textContent = `Replay finished (${events.length} positions).`;
  });
  panel.append(select);
}

async function refreshUsers(app, select) {
  let users = [];
  try { users = items(await api("live/users")); } catch (e) { toast(e.message, "error"); }
  select.replaceChildren(el("option", { value: "" }, users.length ? "Follow a user…" : "Nobody else is viewing"),
    ...users.map((u) => el("option", { value: String(u.user_id) }, `${u.username}${String(u.image_id) === String(app.id) ? " (this image)" : ""}`)));
}

export function setupLive(app) {
  if (!app.user || app.token) return; // share links and anonymous views are not live
  const panel = document.querySelector("#live-panel");
  const select = el("select", { id: "follow-user", "aria-label": "Follow a user" });
  panel.replaceChildren(el("h2", {}, "Live"),
    el("div", { class: "row" }, select,
      el("button", { type: "button", id: "refresh-live", onclick: () => refreshUsers(app, select) }, "Refresh"),
      el("button", { type: "button", id: "stop-follow", hidden: true, onclick: () => stopFollowing() }, "Stop following")),
    el("p", { id: "live-status", class: "muted", role: "status" }),
    el("span", { id: "live-followers", class: "badge", hidden: true }));
  panel.hidden = false;
  select.addEventListener("change", () => {
    if (select.value) follow(app, select.value, select.selectedOptions[0].textContent);
  });
  startReporting(app);
  refreshUsers(app, select);
  const replay = el("button", { type: "button", id: "replay-button" }, "Replay a session…");
  replay.addEventListener("click", () => loadSessions(app, panel, replay));
  panel.append(replay);
  const wanted = new URLSearchParams(location.search).get("follow");
  if (wanted) follow(app, wanted);
  window.microtome.live = { follow: (id) => follow(app, id), state };
}
