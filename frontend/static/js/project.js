// Project page: image grid (search, sort, pages), uploads with progress, members.
import { api, ApiError, items } from "./api.js";
import { confirmDelete } from "./deleting.js";
import { imageCard } from "./images.js";
import { decorateGrid, setupReview } from "./project_review.js";
import { setupProjectAnnotations } from "./project_annotations.js";
import { setupProjectTable } from "./project_table.js";
import { setupProjectAbout } from "./project_about.js";
import { decorateCompare, setupCompare } from "./project_compare.js";
import { TusUpload } from "./tus.js";
import { applyPropertyParams, decorateCards, setupPropertyFilter } from "./propfilter.js";
import { identicalIn, refusal, sameNameIn, sha256Of, showRefusal } from "./uploadcheck.js";
import { missingHalfNote, waitForPair } from "./msiupload.js";
import { openShareDialog } from "./viewer/share.js";
import { currentUser, el, formatBytes, idFromPath, renderTopbar, toast } from "./ui.js";

const $ = (s) => document.querySelector(s);
const PAGE = 24;
const RANK = { viewer: 0, contributor: 1, reviewer: 2, manager: 3 };
const state = { id: idFromPath("projects"), project: null, user: null, offset: 0, total: 0, q: "", sort: "name", pollTimer: null };

function can(role) {
  if (state.user && state.user.is_admin) return true;
  return RANK[state.project.role] !== undefined && RANK[state.project.role] >= RANK[role];
}

async function main() {
  state.user = await currentUser();
  renderTopbar(state.user);
  if (!state.user) { location.assign(`/login?next=${encodeURIComponent(location.pathname)}`); return; }
  try {
    state.project = await api(`projects/${encodeURIComponent(state.id)}`);
  } catch (e) {
    const box = $("#project-error");
    box.hidden = false;
    box.textContent = e.status === 403 || e.status === 404
      ? "This project does not exist or you are not a member of it."
      : `Could not load the project: ${e.message}`;
    $("#members-button").hidden = true;
    document.querySelector("section[aria-labelledby=images-title]").hidden = true;
    return;
  }
  const p = state.project;
  document.title = `${p.name} · Microtome`;
  $("#project-name").textContent = p.name;
  $("#project-role").textContent = p.role || (state.user.is_admin ? "admin" : "");
  $("#upload-section").hidden = !can("contributor");
  $("#delete-project").hidden = !can("manager");
  $("#delete-project").onclick = deleteProject;
  $("#members-button").onclick = openMembers;
  $("#share-project").hidden = !can("manager");
  $("#dashboard-link").hidden = !can("manager");
  $("#dashboard-link").href = `/projects/${encodeURIComponent(state.id)}/dashboard`;
  $("#share-project").onclick = () => openShareDialog({ project_id: Number(state.id) }, "this project");
  setupProjectAbout(state.id, can("manager"));
  setupList();
  setupUploads();
  await setupReview(state.id, can("manager"), () => loadImages());
  setupProjectAnnotations(state.id);
  setupProjectTable(state.id, { role: state.project.role, isAdmin: Boolean(state.user.is_admin) });
  await loadImages();
}

// -- image grid --------------------------------------------------------------
function setupList() {
  let timer = null;
  $("#search").addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.q = $("#search").value.trim(); state.offset = 0; loadImages(); }, 250);
  });
  $("#sort").addEventListener("change", () => { state.sort = $("#sort").value; state.offset = 0; loadImages(); });
  setupPropertyFilter(state.id, $("#sort").parentElement, () => { state.offset = 0; loadImages(); });
  setupCompare($("#sort").parentElement);
  $("#prev-page").onclick = () => { state.offset = Math.max(0, state.offset - PAGE); loadImages(); };
  $("#next-page").onclick = () => { state.offset += PAGE; loadImages(); };
}

let listSeq = 0;

export async function loadImages() {
  // Listings overlap (search typing, status polling, finished uploads): only
  // the latest may draw, or a slow older answer would undo a search.
  const seq = ++listSeq;
  const q = new URLSearchParams({ limit: PAGE, offset: state.offset, sort: state.sort });
  if (state.q) q.set("q", state.q);
  applyPropertyParams(q);
  let data;
  try {
    data = await api(`projects/${encodeURIComponent(state.id)}/images?${q}`);
  } catch (e) {
    if (seq === listSeq) toast(`Could not list images: ${e.message}`, "error");
    return;
  }
  if (seq !== listSeq) return;
  const list = items(data);
  state.total = data.total ?? list.length;
  $("#image-total").textContent = `(${state.total})`;
  const actions = {
    projectId: state.id,
    onRename: can("contributor") ? renameImage : null,
    onRetry: can("contributor") ? retryImage : null,
    // Contributors may delete what they uploaded: offered on failed images.
    onDelete: can("contributor") ? deleteImage : null, deleteAny: can("manager"),
  };
  $("#grid").replaceChildren(...(list.length ? list.map((im) => imageCard(im, actions))
    : [el("p", { class: "empty" }, state.q ? "No image matches this search." : "No images yet. Drop slide files above to upload them.")]));
  decorateGrid(state.id);
  decorateCards($("#grid"), list);
  decorateCompare($("#grid"), list);
  const pages = Math.max(1, Math.ceil(state.total / PAGE));
  $("#page-info").textContent = `Page ${Math.floor(state.offset / PAGE) + 1} of ${pages}`;
  $("#prev-page").disabled = state.offset === 0;
  $("#next-page").disabled = state.offset + PAGE >= state.total;
  // Keep statuses fresh while something converts.
  clearTimeout(state.pollTimer);
  if (list.some((im) => im.status === "pending" || im.status === "converting")) {
    state.pollTimer = setTimeout(loadImages, 3000);
  }
}

async function renameImage(im) {
  const name = prompt("New name", im.name);
  if (!name || name === im.name) return;
  try {
    await api(`images/${im.id}`, { method: "PATCH", body: { name } });
    loadImages();
  } catch (e) { toast(`Rename failed: ${e.message}`, "error"); }
}

// A failed conversion (a full disk, say) runs again from the kept original.
async function retryImage(im) {
  try {
    await api(`images/${im.id}/retry`, { method: "POST" });
    toast(`Converting "${im.name}" again`);
    loadImages();
  } catch (e) { toast(`Retry failed: ${e.message}`, "error"); }
}

async function deleteImage(im) {
  try {
    if (!await confirmDelete({ kind: "image", id: im.id, name: im.name })) return;
    await api(`images/${im.id}`, { method: "DELETE" });
    toast("Image moved to the trash");
    loadImages();
  } catch (e) { toast(`Delete failed: ${e.message}`, "error"); }
}

async function deleteProject() {
  try {
    if (!await confirmDelete({ kind: "project", id: state.id, name: state.project.name })) return;
    await api(`projects/${state.id}`, { method: "DELETE" });
    location.assign("/");
  } catch (e) { toast(`Delete failed: ${e.message}`, "error"); }
}

// -- uploads -----------------------------------------------------------------
function setupUploads() {
  const zone = $("#dropzone");
  const input = $("#file-input");
  input.addEventListener("change", () => { addFiles(input.files); input.value = ""; });
  for (const ev of ["dragenter", "dragover"]) zone.addEventListener(ev, (e) => { e.preventDefault(); zone.classList.add("over"); });
  for (const ev of ["dragleave", "drop"]) zone.addEventListener(ev, (e) => { e.preventDefault(); zone.classList.remove("over"); });
  zone.addEventListener("drop", (e) => addFiles(e.dataTransfer.files));
}

function addFiles(files) {
  for (const file of files) uploadOne(file, missingHalfNote(file, files));
}

function uploadOne(file, note = null) {
  const bar = el("progress", { max: "100", value: "0", "aria-label": `Upload progress of ${file.name}` });
  const status = el("span", { class: "status muted" }, "waiting…");
  const action = el("button", { type: "button", "aria-label": `Cancel upload of ${file.name}` }, "Cancel");
  const row = el("li", { dataset: { file: file.name } },
    el("div", {}, el("strong", {}, file.name), " ", el("span", { class: "muted" }, formatBytes(file.size)), el("br"), status),
    bar, action);
  $("#uploads").prepend(row);
  if (note) row.querySelector("div").append(el("br"), el("span", { class: "muted msi-note" }, note));
  const up = new TusUpload(file, {
    metadata: { project_id: String(state.id) },
    onProgress: (sent, total) => {
      bar.value = total ? Math.round((sent / total) * 100) : 100;
      status.textContent = `uploading ${formatBytes(sent)} of ${formatBytes(total)}`;
    },
  });
  const run = async () => {
    row.dataset.state = "uploading";
    action.textContent = "Cancel";
    action.onclick = () => up.abort();
    status.className = "status muted";
    try {
      const url = await up.start();
      row.dataset.state = "uploaded";
      bar.value = 0;
      status.textContent = "uploaded; waiting for conversion…";
      action.hidden = true;
      const info = await waitForPair(url, await api(url.replace(/^\/api\//, "")), status);
      loadImages();
      await followJob(info, row, bar, status);
    } catch (e) {
      row.dataset.state = "failed";
      status.className = "status error";
      status.textContent = e.message === "cancelled" ? "cancelled" : `upload failed: ${e.message}`;
      action.hidden = false;
      action.textContent = "Retry";
      action.setAttribute("aria-label", `Retry upload of ${file.name}`);
      action.onclick = run;
    }
  };
  checkFirst(file, row, status, bar, action, run);
}

// Refused before a byte is sent when the browser can tell why; a file with the same
// content (SHA-256, the checksum the server keeps) or the same name already in the
// project asks first.
async function checkFirst(file, row, status, bar, action, run) {
  const why = await refusal(file);
  if (why) { showRefusal(row, status, bar, action, why); return; }
  status.textContent = "checking for an identical file…";
  const digest = await sha256Of(file, (p) => {
    status.textContent = `checking for an identical file… ${Math.round(p * 100)}%`;
  }, action);
  const twin = await identicalIn(state.id, digest);
  if (twin) {
    if (!confirm(`An identical file (same content) is already in this project: image "${twin.name}". Upload a second copy?`)) {
      showRefusal(row, status, bar, action, `identical to "${twin.name}", already in this project`);
      return;
    }
    run();
    return;
  }
  const same = await sameNameIn(state.id, file);
  if (same && !confirm(`"${file.name}" is already in this project (image "${same.name}"). Upload a second copy?`)) {
    showRefusal(row, status, bar, action, `already in this project as "${same.name}"`);
    return;
  }
  run();
}

async function followJob(info, row, bar, status) {
  const jobId = info.job_id;
  if (!jobId) { status.textContent = "uploaded"; return; }
  for (;;) {
    let job;
    try { job = await api(`jobs/${jobId}`); } catch (e) {
      if (!(e instanceof ApiError) || e.status >= 500 || e.status === 0) { await sleep(2000); continue; }
      throw e;
    }
    if (job.status === "done") {
      row.dataset.state = "ready";
      bar.value = 100;
      status.className = "status ok";
      status.replaceChildren("converted — ", el("a", { href: `/viewer/${job.image_id}?project=${state.id}` }, "open"));
      loadImages();
      return;
    }
    if (job.status === "failed" || job.status === "cancelled") {
      row.dataset.state = "conversion-failed";
      status.className = "status error";
      status.textContent = `conversion failed: ${job.error || job.status}`;
      loadImages();
      return;
    }
    bar.value = Math.round((job.progress || 0) * 100);
    status.textContent = job.status === "running" ? `converting ${bar.value}%` : "queued for conversion…";
    await sleep(1000);
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// -- members -----------------------------------------------------------------
async function openMembers() {
  const dlg = $("#members-dialog");
  const body = el("tbody");
  const manager = can("manager");
  const render = async () => {
    let members = [];
    try { members = items(await api(`projects/${state.id}/members?limit=500`)); } catch (e) { toast(e.message, "error"); }
    body.replaceChildren(...members.map((m) => el("tr", {},
      el("td", {}, m.username),
      el("td", {}, manager ? roleSelect(m) : m.role),
      el("td", {}, manager ? el("button", { type: "button", class: "danger", "aria-label": `Remove ${m.username}`, onclick: () => removeMember(m) }, "Remove") : ""))));
  };
  const roleSelect = (m) => {
    const s = el("select", { "aria-label": `Role of ${m.username}` }, ["viewer", "contributor", "reviewer", "manager"].map((r) => el("option", { value: r, selected: r === m.role }, r)));
    s.addEventListener("change", async () => {
      try { await api(`projects/${state.id}/members/${m.user_id}`, { method: "PUT", body: { role: s.value } }); toast("Role changed"); } catch (e) { toast(e.message, "error"); render(); }
    });
    return s;
  };
  const removeMember = async (m) => {
    try { await api(`projects/${state.id}/members/${m.user_id}`, { method: "DELETE" }); render(); } catch (e) { toast(e.message, "error"); }
  };
  const addForm = el("form", { class: "row", "aria-label": "Add a member" },
    el("label", { for: "member-name", class: "sr-only" }, "User name"),
    el("input", { id: "member-name", name: "username", placeholder: "User name", required: true }),
    el("label", { for: "member-role", class: "sr-only" }, "Role"),
    el("select", { id: "member-role", name: "role" }, ["viewer", "contributor", "reviewer", "manager"].map((r) => el("option", { value: r }, r))),
    el("button", { type: "submit", class: "primary" }, "Add"));
  addForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const username = addForm.elements.username.value.trim();
    try {
      // By exact user name (the user list is for administrators only); an
      // existing member just gets the chosen role.
      const m = await api(`projects/${state.id}/members`, { method: "POST", body: { username, role: addForm.elements.role.value } });
      toast(`${m.username} is now ${m.role}`);
      addForm.reset();
      render();
    } catch (ex) { toast(`Could not add the member: ${ex.message}`, "error"); }
  });
  dlg.replaceChildren(
    el("h2", { id: "members-title" }, "Members"),
    el("table", { class: "list" }, el("thead", {}, el("tr", {}, el("th", {}, "User"), el("th", {}, "Role"), el("th", {}, ""))), body),
    manager ? el("div", { style: "margin-top:1rem" }, addForm) : null,
    el("div", { class: "buttons" }, el("button", { type: "button", onclick: () => dlg.close() }, "Close")));
  await render();
  dlg.showModal();
}

main().catch((e) => {
  const box = $("#project-error");
  box.hidden = false;
  box.textContent = `Something went wrong: ${e.message}`;
});
