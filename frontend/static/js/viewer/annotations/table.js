// The annotation table: every annotation of the image (not only those in
// view), with term, author, area or length in µm and date; filters by term
// and author; click a row to go there; exports (GeoJSON from the server's
// export route, CSV with measurements made here) and a crop gallery.
// Rows come from the viewport route over the whole image, page by page
// (ids, kinds, terms, authors, geometry); dates are fetched for the rows
// on screen only, so a table of thousands costs a few requests.
import { api } from "../../api.js";
import { el, formatDate } from "../../ui.js";
import { bboxOf, measure } from "./geom.js";

const PAGE = 25;
const PAGE_FETCH = 2000;
export const MAX_ROWS = 20_000;

/** Rows of the table from viewport features (pure: also used by the CSV). */
export function tableRows(features, pixelUm) {
  return features.map((f) => {
    const p = f.properties || {};
    const m = measure(f.geometry, pixelUm);
    const polygonal = f.geometry.type === "Polygon" || f.geometry.type === "MultiPolygon";
    const b = f.bbox;
    return {
      id: f.id, kind: p.kind || f.geometry.type, terms: p.terms || [], userId: p.user_id ?? null,
      area: polygonal ? m.area : null,
      length: polygonal || f.geometry.type.includes("LineString") ? m.length : null,
      cx: b ? (b[0] + b[2]) / 2 : null, cy: b ? (b[1] + b[3]) / 2 : null,
      feature: f,
    };
  });
}

function csvCell(v) {
  const s = v === null || v === undefined ? "" : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** CSV text of rows; `term(id)` and `author(id)` give names. */
export function toCsv(rows, { term, author, unit }) {
  const head = ["id", "kind", "term", "author", `area_${unit}2`, `length_${unit}`, "centroid_x_px", "centroid_y_px", "created_at"];
  const lines = rows.map((r) => [r.id, r.kind, r.terms.map(term).join("; "), author(r.userId),
    r.area === null ? "" : r.area.toFixed(3), r.length === null ? "" : r.length.toFixed(3),
    r.cx === null ? "" : r.cx.toFixed(1), r.cy === null ? "" : r.cy.toFixed(1), r.created || ""].map(csvCell).join(","));
  return [head.join(","), ...lines].join("\n") + "\n";
}

export class AnnotationTable {
  /**
   * @param ctx {imageId, meta, layer, terms() → [{id,name,color}], projectId, user,
   *             goTo(feature), gallery: bool}
   */
  constructor(ctx) {
    this.ctx = ctx;
    this.rows = [];
    this.dates = new Map();
    this.authors = new Map();
    this.page = 0;
    this.filter = { term: "", author: "" };
    this.sort = { key: "id", dir: 1 };
    this.truncated = false;
    this.box = el("section", { id: "anno-table", class: "anno-table", "aria-label": "Annotation table", hidden: true });
    document.querySelector(".viewer-main").append(this.box);
  }

  get open() { return !this.box.hidden; }

  toggle(force) {
    this.box.hidden = force === undefined ? !this.box.hidden : !force;
    if (this.open) this.load();
  }

  termName(id) { const t = this.ctx.layer.terms.get(id); return t ? t.name : `term ${id}`; }

  authorName(id) {
    if (id === null || id === undefined) return "";
    return this.authors.get(id) || `user ${id}`;
  }

  async loadAuthors() {
    const u = this.ctx.user;
    if (u) this.authors.set(u.id, u.username);
    if (!this.ctx.projectId || this.authorsLoaded) return;
    this.authorsLoaded = true;
    try {
      const data = await api(`projects/${encodeURIComponent(this.ctx.projectId)}/members?limit=500`, { noRedirect: true });
      for (const m of (data.items || data || [])) this.authors.set(m.user_id, m.username);
    } catch { /* names are a nicety: ids stay */ }
  }

  async load() {
    const { meta, imageId } = this.ctx;
    const seq = (this.seq = (this.seq || 0) + 1);
    this.status("Loading…");
    const feats = [];
    let after = null;
    try {
      await this.loadAuthors();
      for (;;) {
        const q = `bbox=0,0,${meta.width},${meta.height}&lod=features&limit=${PAGE_FETCH}&scale=1${after !== null ? `&after=${after}` : ""}`;
        const fc = await api(`images/${imageId}/annotations?${q}`, { noRedirect: true });
        if (seq !== this.seq) return;
        for (const f of fc.features || []) feats.push({ ...f, bbox: f.bbox || bboxOf(f.geometry) });
        after = fc.next_after ?? null;
        if (after === null || feats.length >= MAX_ROWS) break;
      }
    } catch (e) {
      if (seq === this.seq) this.status(`Could not list the annotations: ${e.message}`, true);
      return;
    }
    this.truncated = after !== null;
    this.rows = tableRows(feats, meta.pixelUm);
    for (const r of this.rows) r.created = this.dates.get(r.id) || null;
    this.render();
  }

  /** Reload when open (after edits); debounced by the caller's events. */
  refresh() {
    clearTimeout(this.timer);
    if (this.open) this.timer = setTimeout(() => this.load(), 400);
  }

  filtered() {
    const { term, author } = this.filter;
    let rows = this.rows;
    if (term === "none") rows = rows.filter((r) => !r.terms.length);
    else if (term) rows = rows.filter((r) => r.terms.includes(Number(term)));
    if (author) rows = rows.filter((r) => String(r.userId) === author);
    const { key, dir } = this.sort;
    const val = (r) => (key === "term" ? (r.terms.length ? this.termName(r.terms[0]) : "")
      : key === "author" ? this.authorName(r.userId) : r[key] ?? -Infinity);
    return [...rows].sort((a, b) => (val(a) < val(b) ? -dir : val(a) > val(b) ? dir : a.id - b.id));
  }

  status(text, error = false) {
    this.box.replaceChildren(this.header(), el("p", { class: error ? "error" : "muted" }, text));
  }

  header() {
    return el("div", { class: "row anno-table-head" },
      el("h2", {}, "All annotations"),
      el("button", { type: "button", class: "anno-table-close", "aria-label": "Close the table", onclick: () => this.toggle(false) }, "×"));
  }

  render() {
    const unit = this.ctx.meta.pixelUm ? "µm" : "px";
    const rows = this.filtered();
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    this.page = Math.min(this.page, pages - 1);
    const shown = rows.slice(this.page * PAGE, (this.page + 1) * PAGE);
    const termSel = el("select", { id: "table-term", "aria-label": "Filter by term" },
      el("option", { value: "" }, "All terms"), el("option", { value: "none", selected: this.filter.term === "none" }, "No term"),
      this.ctx.terms().map((t) => el("option", { value: String(t.id), selected: this.filter.term === String(t.id) }, t.name)));
    const authorIds = [...new Set(this.rows.map((r) => r.userId).filter((x) => x !== null))];
    const authorSel = el("select", { id: "table-author", "aria-label": "Filter by author" },
      el("option", { value: "" }, "All authors"),
      authorIds.map((id) => el("option", { value: String(id), selected: this.filter.author === String(id) }, this.authorName(id))));
    termSel.addEventListener("change", () => { this.filter.term = termSel.value; this.page = 0; this.render(); termSel.blur(); });
    authorSel.addEventListener("change", () => { this.filter.author = authorSel.value; this.page = 0; this.render(); authorSel.blur(); });
    const th = (key, label) => el("th", { scope: "col", "aria-sort": this.sort.key === key ? (this.sort.dir > 0 ? "ascending" : "descending") : "none" },
      el("button", { type: "button", class: "link", onclick: () => { this.sort = { key, dir: this.sort.key === key ? -this.sort.dir : 1 }; this.render(); } }, label));
    // As the measurement under the viewer (tools.js measureText): 3 digits, mm from 0.1 mm² / 1 mm.
    const n = (v) => v.toLocaleString("en", { maximumSignificantDigits: 3 });
    const area = (v) => (v === null ? "" : unit === "µm" && v >= 1e5 ? `${n(v / 1e6)} mm²` : `${n(v)} ${unit}²`);
    const len = (v) => (v === null ? "" : unit === "µm" && v >= 1000 ? `${n(v / 1000)} mm` : `${n(v)} ${unit}`);
    const body = el("tbody", {}, shown.map((r) => el("tr", {
      dataset: { id: String(r.id) }, tabindex: "0", class: r.id === this.ctx.layer.selectedId ? "current" : "",
      onclick: () => this.ctx.goTo(r.feature),
      onkeydown: (e) => { if (e.key === "Enter") this.ctx.goTo(r.feature); },
    },
    el("td", {}, String(r.id)), el("td", {}, r.kind),
    el("td", {}, r.terms.length ? r.terms.map((t) => this.termName(t)).join(", ") : el("span", { class: "muted" }, "—")),
    el("td", {}, this.authorName(r.userId)), el("td", { class: "num" }, area(r.area)), el("td", { class: "num" }, len(r.length)),
    el("td", { class: "date" }, r.created ? formatDate(r.created) : "…"))));
    const gallery = this.ctx.gallery && this.showGallery
      ? el("div", { class: "crop-gallery", id: "crop-gallery" }, shown.map((r) => el("button", { type: "button", class: "crop", title: `#${r.id}`, onclick: () => this.ctx.goTo(r.feature) },
        el("img", { src: `/api/annotations/${r.id}/crop.jpg?size=128&pad=8`, alt: `Annotation ${r.id}`, loading: "lazy", width: "96", height: "96" }))))
      : null;
    this.box.replaceChildren(
      this.header(),
      el("div", { class: "row anno-table-tools" }, termSel, authorSel,
        el("span", { class: "muted", id: "table-count" }, `${rows.length} of ${this.rows.length}${this.truncated ? "+" : ""}`),
        el("span", { style: "flex:1" }),
        el("a", { class: "button", id: "export-geojson", href: `/api/images/${this.ctx.imageId}/annotations/export`, download: `image-${this.ctx.imageId}-annotations.geojson` }, "GeoJSON"),
        el("button", { type: "button", id: "export-csv", onclick: () => this.exportCsv() }, "CSV"),
        this.ctx.gallery ? el("button", { type: "button", id: "toggle-gallery", "aria-pressed": String(Boolean(this.showGallery)), onclick: () => { this.showGallery = !this.showGallery; this.render(); } }, "Crops") : null),
      gallery || el("div", { class: "table-scroll" }, el("table", {},
        el("thead", {}, el("tr", {}, th("id", "#"), th("kind", "Kind"), th("term", "Term"), th("author", "Author"), th("area", `Area`), th("length", "Length / perimeter"), el("th", { scope: "col" }, "Date"))),
        body)),
      el("div", { class: "row pager" },
        el("button", { type: "button", disabled: this.page === 0, onclick: () => { this.page -= 1; this.render(); } }, "‹"),
        el("span", { class: "muted" }, `page ${this.page + 1} of ${pages}`),
        el("button", { type: "button", disabled: this.page >= pages - 1, onclick: () => { this.page += 1; this.render(); } }, "›")));
    this.fillDates(shown);
  }

  /** Dates of the rows on screen (the listing does not carry them). */
  async fillDates(rows) {
    const missing = rows.filter((r) => !r.created);
    await Promise.all(missing.map(async (r) => {
      try {
        const f = await api(`annotations/${r.id}`, { noRedirect: true });
        r.created = f.properties.created_at;
        this.dates.set(r.id, r.created);
        const cell = this.box.querySelector(`tr[data-id="${r.id}"] td.date`);
        if (cell) cell.textContent = formatDate(r.created);
      } catch { /* deleted meanwhile: the next refresh drops it */ }
    }));
  }

  exportCsv() {
    const rows = this.filtered();
    const text = toCsv(rows, { term: (t) => this.termName(t), author: (u) => this.authorName(u), unit: this.ctx.meta.pixelUm ? "um" : "px" });
    const a = el("a", { href: URL.createObjectURL(new Blob([text], { type: "text/csv" })), download: `image-${this.ctx.imageId}-annotations.csv` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  }
}
