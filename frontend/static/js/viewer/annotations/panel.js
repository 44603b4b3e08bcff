// Annotation UI: tool bar, terms (colour, visibility, current term), display
// (opacity, fill), the in-view list with click-to-zoom, the selection (what
// the role may change), keys; writes and undo/redo are in edits.js, the
// table of every annotation in table.js.
import { api } from "../../api.js";
import { el, toast } from "../../ui.js";
import { AnnotationLayer, toFeature } from "./layer.js";
import { TOOLS, Tools, measureText } from "./tools.js";
import { bboxOf } from "./geom.js";
import { Edits } from "./edits.js";
import { AnnotationTable } from "./table.js";
import { LayersPanel } from "./layers.js";
import { Review } from "./review.js";
import { setupAnnotationProps } from "./props.js";
import { isTyping } from "../keys.js";

const LIST_LIMIT = 200;

/** The annotation endpoints, in one place. */
export const annoApi = {
  viewport: (imageId, box, scale, signal, extra = "") => api(
    // Up to 5000 shapes per answer (one merged path per term draws them in a
    // few ms); beyond that the server sends a 32×32 grid of clusters.
    `images/${imageId}/annotations?bbox=${box.map((v) => Math.round(v)).join(",")}&scale=${scale.toPrecision(4)}&max_features=5000&grid=32${extra}`,
    { noRedirect: true, signal }),
  list: (imageId, limit) => api(`images/${imageId}/annotations?limit=${limit}`, { noRedirect: true }),
  get: (id) => api(`annotations/${id}`, { noRedirect: true }),
  // Writes never navigate away (an expired session must not lose a drawing):
  // the error is shown and the shape kept for a retry after logging in again.
  // clip=true: a shape drawn across the image's edge is cut at the edge
  // (the server's clip), not refused.
  create: (imageId, body) => api(`images/${imageId}/annotations?clip=true`, { method: "POST", body, noRedirect: true }),
  update: (id, body) => api(`annotations/${id}?clip=true`, { method: "PATCH", body, noRedirect: true }),
  remove: (id) => api(`annotations/${id}`, { method: "DELETE", noRedirect: true }),
  terms: (projectId) => api(`projects/${projectId}/terms`, { noRedirect: true }),
  // Terms of every project holding the image: readable wherever the image is
  // (share links included), so shared views colour annotations too.
  imageTerms: (imageId) => api(`images/${imageId}/terms`, { noRedirect: true }),
  counts: (imageId, w, h, extra = "") => api(`images/${imageId}/annotations/counts?bbox=0,0,${w},${h}${extra}`, { noRedirect: true }),
  createTerm: (projectId, body) => api(`projects/${projectId}/terms`, { method: "POST", body }),
  updateTerm: (projectId, id, body) => api(`projects/${projectId}/terms/${id}`, { method: "PATCH", body, noRedirect: true }),
  // Without force the server refuses (409, detail.annotations = how many use it).
  deleteTerm: (projectId, id, force = false) => api(`projects/${projectId}/terms/${id}${force ? "?force=true" : ""}`, { method: "DELETE", noRedirect: true }),
};

export async function setupAnnotations(state, { readOnly = false } = {}) {
  const { viewer, meta } = state;
  const imageId = encodeURIComponent(state.id);
  const panel = document.querySelector("#anno-panel");
  const canvas = document.querySelector("#anno-canvas");
  const measureBox = document.querySelector("#measure");
  const layer = new AnnotationLayer(viewer, canvas, {
    fetchViewport: (box, scale, signal) => annoApi.viewport(imageId, box, scale, signal, layers.query()),
  });
  const ui = { currentTerm: null, projectId: null, terms: [], role: null };
  window.microtome.annotations = layer;

  ui.projectId = new URLSearchParams(location.search).get("project") || (state.image && state.image.project_id) || null;
  // Without a project in the URL the server files new annotations under the
  // first project where the user may write; terms need the project though.
  if (state.user && state.user.is_admin) ui.role = "manager";
  if (!readOnly && ui.projectId && !(state.user && state.user.is_admin)) {
    try {
      const project = await api(`projects/${encodeURIComponent(ui.projectId)}`, { noRedirect: true });
      ui.role = project.role;
      readOnly = project.role === "viewer";
    } catch { ui.projectId = null; }
  }
  // Renaming, recolouring and deleting terms is for the project's managers.
  const manageTerms = !readOnly && Boolean(ui.projectId) && ui.role === "manager";
  /** What the server allows (annotations/permissions.py): managers change
   *  anything, contributors what they made; unsaved drawings are one's own. */
  function canEdit(f) {
    if (readOnly || !f) return false;
    if (f.id < 0 || ui.role === "manager" || (state.user && state.user.is_admin)) return true;
    const author = f.properties && f.properties.user_id;
    return author === undefined || author === null || (state.user && author === state.user.id);
  }

  layer.canEdit = canEdit;
  // Layers by author / analysis with filters (layers.js); review (review.js).
  const layers = new LayersPanel({ imageId, projectId: ui.projectId, layer, saveColors: Boolean(state.user) && !state.token, onChange: () => { layer.refresh(true); loadCounts(); } });
  const review = new Review({
    imageId, projectId: ui.projectId, role: ui.role, user: state.user, terms: () => ui.terms,
    onReviewed: (f) => {
      layer.features.set(f.id, { ...toFeature(f), full: true });
      layer.writes += 1;
      layer.invalidate();
      select(f.id);
      loadCounts();
      table.refresh();
    },
  });
  window.microtome.review = review;

  // -- panel skeleton ---------------------------------------------------------
  const termList = el("ul", { class: "term-list", "aria-label": "Terms" });
  const annoList = el("ul", { class: "anno-list", "aria-label": "Annotations" });
  const count = el("span", { class: "muted" });
  const opacity = el("input", { type: "range", id: "anno-opacity", min: "0", max: "1", step: "0.05", value: String(layer.opacity) });
  const fill = el("input", { type: "checkbox", id: "anno-fill", checked: true });
  const selBox = el("div", { id: "selection", "aria-live": "polite" });
  opacity.addEventListener("input", () => { layer.opacity = Number(opacity.value); layer.draw(); });
  fill.addEventListener("change", () => { layer.fill = fill.checked; layer.draw(); });
  panel.hidden = false;
  panel.replaceChildren(...[
    el("h2", {}, "Annotations ", count),
    el("div", { class: "row" },
      el("label", { for: "anno-opacity", style: "margin:0" }, "Opacity"), opacity,
      el("label", { style: "margin:0;display:flex;gap:.3rem;align-items:center" }, fill, "Filled")),
    review.badge,
    el("h2", {}, "Terms"), termList,
    readOnly || !ui.projectId ? null : termForm(),
    layers.box,
    selBox,
    el("h2", { class: "row", style: "justify-content:space-between" }, "In view",
      el("button", { type: "button", id: "open-table", title: "Every annotation of the image, with filters and exports", onclick: () => table.toggle() }, "Table of all")),
    annoList,
  ].filter(Boolean));

  // The selection's properties (props.js): contributors of the project edit them.
  setupAnnotationProps(selBox, { editable: () => !readOnly && ["contributor", "reviewer", "manager"].includes(ui.role) });

  function termForm() {
    const f = el("form", { class: "row", "aria-label": "Add a term", style: "margin-top:.4rem" },
      el("label", { for: "term-name", class: "sr-only" }, "New term name"),
      el("input", { id: "term-name", name: "name", placeholder: "New term", required: true, style: "flex:1;min-width:0" }),
      el("label", { for: "term-color", class: "sr-only" }, "Term colour"),
      el("input", { id: "term-color", name: "color", type: "color", value: "#e5484d" }),
      el("button", { type: "submit" }, "Add"));
    f.addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        const t = await annoApi.createTerm(ui.projectId, { name: f.elements.name.value.trim(), color: f.elements.color.value });
        f.reset();
        await loadTerms(t.id);
      } catch (ex) { toast(`Could not add the term: ${ex.message}`, "error"); }
    });
    return f;
  }

  async function loadTerms(select = null) {
    let all = [];
    try { all = items(await annoApi.imageTerms(imageId)); } catch { all = []; }
    // The panel lists the project's terms (those new annotations can take);
    // read-only views without a project (share links) list every term of the
    // image.  Colours come from all of them: annotations made in other
    // projects keep theirs.
    if (ui.projectId) ui.terms = all.filter((t) => String(t.project_id) === String(ui.projectId));
    else ui.terms = readOnly ? all : [];
    layer.terms = new Map(all.map((t) => [t.id, t]));
    if (select !== null) ui.currentTerm = select;
    renderTerms();
    layer.invalidate();
  }

  /** Per-term totals for the whole image (shown beside each term), refreshed after edits. */
  let countsTimer = null;
  function loadCounts() {
    clearTimeout(countsTimer);
    countsTimer = setTimeout(async () => {
      if (!meta.width) return;
      try { ui.counts = await annoApi.counts(imageId, meta.width, meta.height, layers.query()); } catch { ui.counts = null; }
      review.refreshImage();
      renderTerms();
    }, 300);
  }

  function renderTerms() {
    const rows = [...ui.terms, { id: "none", name: "No term", color: "#ffd400" }];
    termList.replaceChildren(...rows.map((t) => {
      const vis = el("input", { type: "checkbox", checked: !layer.hiddenTerms.has(t.id), "aria-label": `Show ${t.name}` });
      vis.addEventListener("change", () => {
        if (vis.checked) layer.hiddenTerms.delete(t.id); else layer.hiddenTerms.add(t.id);
        layer.invalidate();
      });
      const current = readOnly ? null : el("input", { type: "radio", name: "current-term", value: String(t.id), checked: (ui.currentTerm ?? "none") === t.id, "aria-label": `Draw with ${t.name}` });
      if (current) current.addEventListener("change", () => { ui.currentTerm = t.id; });
      const n = ui.counts ? (t.id === "none" ? ui.counts.untermed : (ui.counts.terms || {})[t.id] || 0) : null;
      const edit = manageTerms && t.id !== "none"
        ? el("button", { type: "button", class: "term-edit", title: "Rename, recolour or delete", "aria-label": `Edit term ${t.name}`, onclick: () => editTerm(t) }, "✎")
        : null;
      return el("li", { dataset: { termId: String(t.id) } }, vis, el("span", { class: "swatch", style: `background:${t.color}` }),
        el("span", { style: "flex:1" }, t.name, n !== null ? el("span", { class: "muted" }, ` ${n}`) : null), current, edit);
    }));
  }

  /** The term dialog (managers): rename, recolour, delete — with a confirmation
   *  naming how many annotations lose the term when it is in use. */
  function editTerm(t) {
    const dlg = document.querySelector("#term-dialog");
    const msg = el("p", { id: "term-edit-msg", "aria-live": "polite" });
    const form = el("form", { method: "dialog" },
      el("label", { for: "term-edit-name" }, "Name"),
      el("input", { id: "term-edit-name", name: "name", value: t.name, required: true, maxlength: "200" }),
      el("label", { for: "term-edit-color" }, "Colour"),
      el("input", { id: "term-edit-color", name: "color", type: "color", value: t.color }),
      msg);
    const buttons = el("div", { class: "buttons" });
    const normal = () => buttons.replaceChildren(
      el("button", { type: "button", class: "danger", id: "term-delete", style: "margin-right:auto", onclick: () => remove(false) }, "Delete term"),
      el("button", { type: "button", onclick: () => dlg.close() }, "Cancel"),
      el("button", { type: "submit", class: "primary", id: "term-save" }, "Save"));
    form.append(buttons);
    normal();
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const body = {};
      const name = form.elements.name.value.trim();
      if (name !== t.name) body.name = name;
      if (form.elements.color.value.toLowerCase() !== t.color) body.color = form.elements.color.value;
      if (!Object.keys(body).length) { dlg.close(); return; }
      try {
        await annoApi.updateTerm(ui.projectId, t.id, body);
        dlg.close();
        toast("Term saved");
        await loadTerms();
        renderList();
      } catch (ex) { msg.className = "error"; msg.textContent = `Could not save the term: ${ex.message}`; }
    });
    async function remove(force) {
      try {
        await annoApi.deleteTerm(ui.projectId, t.id, force);
      } catch (ex) {
        if (ex.status === 409 && !force) {
          const n = Number(ex.detail && ex.detail.annotations) || 0;
          msg.className = "error";
          msg.textContent = `“${t.name}” is used by ${n} annotation${n === 1 ? "" : "s"}. Delete it anyway? They keep their shapes but lose this term.`;
          buttons.replaceChildren(
            el("button", { type: "button", onclick: () => { msg.textContent = ""; normal(); } }, "Keep the term"),
            el("button", { type: "button", class: "danger", id: "term-delete-force", onclick: () => remove(true) }, `Delete from ${n} annotation${n === 1 ? "" : "s"}`));
          return;
        }
        msg.className = "error";
        msg.textContent = `Could not delete the term: ${ex.message}`;
        return;
      }
      dlg.close();
      toast(`Term “${t.name}” deleted`);
      // The server took the term off its annotations: do the same here at once.
      for (const f of layer.allFeatures()) if (f.terms && f.terms.includes(t.id)) f.terms = f.terms.filter((x) => x !== t.id);
      if (String(ui.currentTerm) === String(t.id)) ui.currentTerm = null;
      layer.hiddenTerms.delete(t.id);
      layer.writes += 1;
      await loadTerms();
      renderList();
      if (layer.selectedId !== null) select(layer.selectedId);
      layer.refresh(true);
    }
    dlg.replaceChildren(el("h2", { id: "term-dialog-title" }, "Edit term"), form);
    dlg.showModal();
    form.elements.name.focus();
  }

  const table = new AnnotationTable({
    imageId, meta, layer, projectId: ui.projectId, user: state.user,
    terms: () => ui.terms, goTo: (f) => zoomTo(f), gallery: !state.token,
    canReview: () => review.requires && review.canReview,
    onChanged: () => { layer.writes += 1; layer.refresh(true); layers.load(); },
  });
  window.microtome.table = table;

  // -- list -------------------------------------------------------------------
  layer.onData = () => {
    if (layer.onWrites) layer.onWrites();
    const n = [...layer.allFeatures()].length;
    if (layer.lod === "clusters") count.textContent = `(${layer.clusters.reduce((a, c) => a + c.count, 0)} in view, zoom in to see shapes)`;
    else count.textContent = `(${n}${layer.truncated ? "+" : ""} in view)`;
    renderList();
  };

  function renderList() {
    const feats = [...layer.allFeatures()].slice(0, LIST_LIMIT);
    annoList.replaceChildren(...feats.map((f) => {
      const term = f.terms.length ? layer.terms.get(f.terms[0]) : null;
      const kind = String((f.properties && f.properties.kind) || f.geometry.type);
      const label = `${term ? term.name : kind.charAt(0).toUpperCase() + kind.slice(1)} #${f.id > 0 ? f.id : "new"}`;
      return el("li", {}, el("button", { type: "button", "aria-current": f.id === layer.selectedId ? "true" : "false", onclick: () => zoomTo(f) },
        el("span", { class: "swatch", style: `display:inline-block;width:10px;height:10px;border-radius:2px;background:${layer.termColor(f.terms)}` }),
        label, f.error ? el("span", { class: "error" }, " (not saved)") : null));
    }));
  }

  function zoomTo(f) {
    const b = f.bbox || bboxOf(f.geometry);
    const item = layer.item();
    const pad = Math.max(b[2] - b[0], b[3] - b[1], 50) * 0.3;
    viewer.viewport.fitBounds(item.imageToViewportRectangle(b[0] - pad, b[1] - pad, b[2] - b[0] + 2 * pad, b[3] - b[1] + 2 * pad));
    // From the table: maybe far from the shapes loaded so far.
    if (!layer.get(f.id)) { layer.features.set(f.id, toFeature(f)); layer.invalidate(); }
    select(f.id);
  }

  // -- selection --------------------------------------------------------------
  function select(id) {
    layer.selectedId = id;
    document.dispatchEvent(new CustomEvent("microtome:annotation-selected", { detail: { id } }));
    layer.draw();
    renderList();
    const f = id !== null ? layer.get(id) : null;
    if (!f) { selBox.replaceChildren(); measureBox.textContent = ""; return; }
    measureBox.textContent = measureText(f.geometry, meta.pixelUm);
    const editable = canEdit(f);
    const reviewSlot = el("div", { id: "review-slot" });
    const termSel = el("select", { id: "selected-term", "aria-label": "Term of the selected annotation", disabled: !editable },
      el("option", { value: "" }, "No term"),
      ui.terms.map((t) => el("option", { value: String(t.id), selected: f.terms.includes(t.id) }, t.name)));
    termSel.addEventListener("change", () => {
      // Give the keys back to the shortcuts (a focused <select> eats letters).
      termSel.blur();
      setTerm(f.id, termSel.value ? [Number(termSel.value)] : []);
    });
    selBox.replaceChildren(...[el("h2", {}, "Selected"),
      el("p", { class: "muted", style: "margin:.2rem 0" }, measureText(f.geometry, meta.pixelUm) || f.geometry.type),
      el("div", { class: "row" }, termSel,
        editable ? el("button", { type: "button", class: "danger", id: "selected-delete", onclick: () => removeAnno(f.id) }, "Delete") : null),
      !editable && !readOnly ? el("p", { class: "muted", id: "selected-readonly" }, "Made by someone else: only its author or a project manager can change it.") : null,
      f.error ? el("p", { class: "error" }, f.error, " ",
        el("button", { type: "button", onclick: () => retry(f) }, "Retry"), " ",
        el("button", { type: "button", onclick: () => edits.discard(f) }, "Discard")) : null,
      reviewSlot].filter(Boolean));
    if (id > 0 && review.requires) {
      annoApi.get(id).then((full) => { if (layer.selectedId === id) reviewSlot.replaceChildren(review.controls(full) || ""); }).catch(() => {});
    }
    // Edits need the exact geometry (the viewport may have sent a simplified one).
    if (id > 0 && !readOnly && !f.full) {
      annoApi.get(id).then((full) => {
        const cur = layer.get(id);
        if (!cur || layer.local.has(id)) return;
        layer.features.set(id, { ...toFeature(full), full: true });
        layer.invalidate();
      }).catch(() => {});
    }
  }

  // -- writes (optimistic, with undo/redo: edits.js) ---------------------------
  const edits = new Edits(layer, annoApi, {
    imageId,
    projectId: () => ui.projectId,
    currentTerms: () => (ui.currentTerm !== null && ui.currentTerm !== "none" ? [Number(ui.currentTerm)] : []),
    select,
    selectedChanged: () => { if (layer.selectedId !== null) select(layer.selectedId); else renderList(); },
  });
  window.microtome.edits = edits;
  const setTerm = (id, terms) => edits.setTerms(id, terms);
  const removeAnno = (id) => { if (canEdit(layer.get(id))) edits.remove(id); };
  const retry = (f) => edits.retry(f);

  // -- tools ------------------------------------------------------------------
  const tools = new Tools(viewer, layer, {
    create: (g, shape) => edits.create(g, shape),
    update: (id, g, how, delta) => edits.update(id, g, how, delta),
    preview: (id, g) => {
      const f = layer.get(id);
      if (!f) return;
      layer.local.set(id, { ...f, geometry: g, bbox: bboxOf(g), dragging: true });
      layer.invalidate();
    },
    canEdit: (id) => canEdit(layer.get(id)),
    select,
    measure: (text) => { measureBox.textContent = text; },
  }, meta.pixelUm);
  // A drag that ends without an update (no movement) must not leave a ghost.
  viewer.addHandler("canvas-release", () => {
    for (const [id, f] of layer.local) if (f.dragging && !tools.drag) { layer.local.delete(id); layer.invalidate(); }
  });

  const bar = document.querySelector("#anno-tools");
  if (!readOnly) {
    bar.hidden = false;
    const buttons = TOOLS.map((t) => el("button", { type: "button", "aria-pressed": t.id === "pan" ? "true" : "false", title: t.title, dataset: { tool: t.id }, onclick: () => choose(t.id) }, t.label));
    const undoBtn = el("button", { type: "button", id: "undo", title: "Undo (Ctrl+Z)", "aria-label": "Undo", disabled: true, onclick: () => edits.undo() }, "Undo");
    const redoBtn = el("button", { type: "button", id: "redo", title: "Redo (Ctrl+Shift+Z or Ctrl+Y)", "aria-label": "Redo", disabled: true, onclick: () => edits.redo() }, "Redo");
    edits.history.onChange = () => {
      undoBtn.disabled = !edits.history.undoStack.length;
      redoBtn.disabled = !edits.history.redoStack.length;
    };
    bar.replaceChildren(...buttons, undoBtn, redoBtn);
    function choose(id) {
      tools.setTool(id);
      for (const b of buttons) b.setAttribute("aria-pressed", String(b.dataset.tool === id));
    }
    document.addEventListener("keydown", (e) => {
      if (isTyping(e)) return;
      const key = e.key.toLowerCase();
      if ((e.ctrlKey || e.metaKey) && !e.altKey && (key === "z" || key === "y")) {
        e.preventDefault();
        if (key === "y" || e.shiftKey) edits.redo(); else edits.undo();
        return;
      }
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      if (tools.onKey(e)) { e.preventDefault(); e.stopImmediatePropagation(); return; }
      if ((e.key === "Delete" || e.key === "Backspace") && layer.selectedId !== null) { e.preventDefault(); removeAnno(layer.selectedId); return; }
      if (e.key === "Escape" && layer.selectedId !== null) { select(null); return; }
      const t = TOOLS.find((x) => x.key === e.key);
      if (t) { e.preventDefault(); choose(t.id); }
    }, true);
  } else {
    tools.readOnly = true;
    tools.setTool("select");
  }
  window.microtome.tools = tools;
  await Promise.all([loadTerms(), review.load(), layers.load()]);
  loadCounts();
  let seenWrites = 0;
  layer.onWrites = () => { if (layer.writes !== seenWrites) { seenWrites = layer.writes; loadCounts(); table.refresh(); layers.load(); } };
  layer.refresh(true);
  // A link from the project's annotation table: #annotation-ID opens on it, selected.
  const linked = /^#annotation-(\d+)$/.exec(location.hash);
  if (linked) annoApi.get(linked[1]).then(zoomTo).catch((e) => toast(`Could not open annotation ${linked[1]}: ${e.message}`, "error"));
  return { role: ui.role, projectId: ui.projectId };
}

function items(data) {
  if (Array.isArray(data)) return data;
  return (data && (data.items || data.terms)) || [];
}
