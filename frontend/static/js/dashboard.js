// Project dashboard (managers): most viewed images, per-user activity, annotations per day.
import { api } from "./api.js";
import { currentUser, el, idFromPath, renderTopbar } from "./ui.js";

const $ = (s) => document.querySelector(s);
const projectId = idFromPath("projects");

function duration(s) {
  s = Math.round(Number(s) || 0);
  return s >= 3600 ? `${(s / 3600).toFixed(1)} h` : s >= 60 ? `${Math.round(s / 60)} min` : `${s} s`;
}

function table(node, head, rows) {
  node.replaceChildren(el("thead", {}, el("tr", {}, head.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.length ? rows.map((r) => el("tr", {}, r.map((c) => el("td", {}, c))))
      : el("tr", {}, el("td", { colspan: head.length, class: "muted" }, "No activity in this period."))));
}

async function load() {
  let d;
  try {
    d = await api(`projects/${encodeURIComponent(projectId)}/dashboard?days=${$("#days").value}`);
  } catch (e) {
    const box = $("#dash-error");
    box.hidden = false;
    box.textContent = e.status === 403 ? "The dashboard is for the project's managers." : `Could not load the dashboard: ${e.message}`;
    return;
  }
  table($("#most-viewed"), ["Image", "Opens", "Viewers", "Time viewed"], d.most_viewed.map((r) => [
    el("a", { href: `/viewer/${encodeURIComponent(r.image_id)}?project=${encodeURIComponent(projectId)}` }, r.name),
    String(r.opens), String(r.viewers), duration(r.seconds)]));
  table($("#users"), ["User", "Opens", "Images", "Time viewed", "Annotation actions", "Last seen"], d.users.map((r) => [
    r.username || `#${r.user_id}`, String(r.opens), String(r.images), duration(r.seconds),
    String(r.annotation_actions), new Date(r.last_seen).toLocaleString()]));
  const max = Math.max(1, ...d.annotations_per_day.map((r) => r.count));
  $("#per-day").replaceChildren(...(d.annotations_per_day.length ? d.annotations_per_day.map((r) =>
    el("div", { class: "bar-row" }, el("span", { class: "muted" }, r.day),
      el("span", { class: "bar", style: `width:${(100 * r.count / max).toFixed(1)}%`, title: String(r.count) }),
      el("span", {}, String(r.count))))
    : [el("p", { class: "muted" }, "No annotations in this period.")]));
}

async function main() {
  const user = await currentUser();
  renderTopbar(user);
  if (!user) { location.assign(`/login?next=${encodeURIComponent(location.pathname)}`); return; }
  try {
    const p = await api(`projects/${encodeURIComponent(projectId)}`);
    $("#project-link").textContent = p.name;
    $("#project-link").href = `/projects/${encodeURIComponent(projectId)}`;
  } catch { /* the dashboard call explains */ }
  $("#days").addEventListener("change", load);
  await load();
}

main();
