// The annotation table: every annotation of the image (not only those in
// view), from the server's paginated table (GET …/annotations/table): sorted
// by any column on the server, keyset pages, filters by term, author and
// review status; row click goes there; row selection for bulk actions
// (change term, delete, accept, reject); a few properties per row; exports of the current filter as
// CSV, GeoJSON and Excel (optionally only the reviewed annotations), and a
// crop gallery of the page.  The project page uses the same table over the
// whole project (ctx.base = "projects/ID", project_table.js): an Image column
// and filter, and rows that open the viewer.
import { api } from "../../api.js";
import { el, formatDate, toast } from "../../ui.js";

const PAGE = 25;
const SORTS = { id: "id", image: "image", kind: "kind", term: "term", author: "author", area: "area", length: "perimeter", date: "created", status: "status" };
const POLYGONAL = new Set(["polygon", "multipolygon", "rectangle", "ellipse"]);

/** A few of an annotation's properties as "name value" (measurements flattened). */
export function propsText(props, max = 3) {
  const out = [];
  const walk = (o, prefix) => {
    for (const [k, v] of Object.entries(o || {})) {
      if (out.length >= max) return;
      if (v && typeof v === "object" && !Array.isArray(v)) walk(v, prefix ? `${prefix}.${k}` : (k === "measurements" ? "" : k));
      else if (typeof v === "number") out.push(`${prefix ? `${prefix}.` : ""}${k} ${v.toLocaleString("en", { maximumSignificantDigits: 4 })}`);
      else if (typeof v === "string" && v.length <= 40) out.push(`${prefix ? `${prefix}.` : ""}${k} ${v}`);
    }
  };
  walk(props, "");
  return out.join(", ");
}

export class AnnotationTable {
  /**
   * @param ctx {imageId, meta, layer, terms() → [{id,name,color}], projectId, user,
   *             goTo(feature), gallery: bool, canReview() → bool, onChanged()}
   *   the project's table instead: {base: "projects/ID", container, images: [{id,name}],
   *             authors() → [{user_id,name}], termName(id), openRow(row), viewerHref(row)}
   */
  constructor(ctx) {
    this.ctx = ctx;
    this.base = ctx.base || `images/${ctx.imageId}`;
    this.filter = { term: "", author: "", status: "", image: "", prop: "", value: "" };
    this.sort = { key: "id", dir: 1 };
    this.cursors = [null]; // cursor of each page seen (keyset: back = the previous one)
    this.page = 0;
    this.data = null;
    this.authors = [];
    this.selected = new Set();
    this.reviewedOnly = false;
    this.box = el("section", { id: ctx.boxId || "anno-table", class: ctx.boxClass || "anno-table", "aria-label": "Annotation table", hidden: true });
    (ctx.container || document.querySelector(".viewer-main")).append(this.box);
  }

  get open() { return !this.box.hidden; }

  toggle(force) {
    this.box.hidden = force === undefined ? !this.box.hidden : !force;
    if (this.open) this.reset();
  }

  termName(id) {
    if (this.ctx.termName) return this.ctx.termName(id);
    const t = this.ctx.layer.terms.get(id);
    return t ? t.name : `term ${id}`;
  }

  /** The filter as query parameters (the table, its exports). */
  query(extra = {}) {
    const q = new URLSearchParams();
    const { term, author, status, image, prop, value } = this.filter;
    if (term === "none") q.set("untermed", "true"); else if (term) q.set("term", term);
    if (author) q.set("layers", `user:${author}`);
    if (status) q.set("status", status);
    if (image) q.set("image", image);
    // Key/value: the property equals the text (case-insensitive).
    if (prop && value) { q.set("prop", prop); q.set("prop_value", value); }
    if (this.ctx.projectId && !this.ctx.base) q.set("project", this.ctx.projectId);
    for (const [k, v] of Object.entries(extra)) if (v !== null && v !== undefined) q.set(k, v);
    return q.toString();
  }

  reset() { this.cursors = [null]; this.page = 0; this.selected.clear(); this.load(); }

  async load() {
    const seq = (this.seq = (this.seq || 0) + 1);
    if (!this.data) this.status("Loading…");
    try {
      if (!this.authors.length) {
        this.authors = this.ctx.authors ? await this.ctx.authors()
          : ((await api(`images/${this.ctx.imageId}/annotations/layers`, { noRedirect: true })).items || []).filter((l) => l.kind === "author");
        if (seq !== this.seq) return;
      }
      const after = this.cursors[this.page];
      const q = this.query({ sort: SORTS[this.sort.key], order: this.sort.dir > 0 ? "asc" : "desc", limit: PAGE, after });
      const data = await api(`${this.base}/annotations/table?${q}`, { noRedirect: true });
      if (seq !== this.seq) return;
      this.data = data;
      this.cursors[this.page + 1] = data.next;
    } catch (e) {
      if (seq === this.seq) this.status(`Could not list the annotations: ${e.message}`, true);
      return;
    }
    this.render();
  }

  /** Reload when open (after edits); debounced by the caller's events. */
  refresh() {
    clearTimeout(this.timer);
    if (this.open) this.timer = setTimeout(() => { this.authors = []; this.load(); }, 400);
  }

  status(text, error = false) {
    this.box.replaceChildren(this.header(), el("p", { class: error ? "error" : "muted" }, text));
  }

  header() {
    return el("div", { class: "row anno-table-head" },
      el("h2", {}, this.ctx.title || "All annotations"),
      this.ctx.container ? null : el("button", { type: "button", class: "anno-table-close", "aria-label": "Close the table", onclick: () => this.toggle(false) }, "×"));
  }

  select(id, name, options, value, onChange) {
    const s = el("select", { id, "aria-label": name }, options.map(([v, label]) => el("option", { value: v, selected: value === v }, label)));
    s.addEventListener("change", () => { onChange(s.value); s.blur(); });
    return s;
  }

  filters() {
    const set = (k) => (v) => { this.filter[k] = v; this.reset(); };
    // Key and value apply together (Enter or the button): a key alone would ask for a number.
    const key = el("input", { id: "table-prop", name: "key", "aria-label": "Filter by property (key)", placeholder: "property", value: this.filter.prop, size: 10 });
    const value = el("input", { id: "table-prop-value", name: "value", "aria-label": "Property value", placeholder: "= value", value: this.filter.value, size: 10 });
    const prop = el("form", { id: "table-prop-form", class: "row" }, key, value,
      el("button", { type: "submit", title: "Only annotations whose property has this value (empty: any)" }, "Filter"));
    prop.addEventListener("submit", (e) => {
      e.preventDefault();
      this.filter.prop = key.value.trim();
      this.filter.value = value.value.trim();
      this.reset();
    });
    return [
      this.ctx.images ? this.select("table-image", "Filter by image", [["", "All images"], ...this.ctx.images.map((im) => [String(im.id), im.name])], this.filter.image, set("image")) : null,
      this.select("table-term", "Filter by term", [["", "All terms"], ["none", "No term"], ...this.ctx.terms().map((t) => [String(t.id), t.name])], this.filter.term, set("term")),
      this.select("table-author", "Filter by author", [["", "All authors"], ...this.authors.map((a) => [String(a.user_id), a.name])], this.filter.author, set("author")),
      this.select("table-status", "Filter by review status", [["", "Any review status"], ["pending", "Pending"], ["accepted", "Accepted"], ["rejected", "Rejected"]], this.filter.status, set("status")),
      prop,
    ].filter(Boolean);
  }

  exports() {
    const link = (fmt, id, label) => el("a", {
      class: "button", id, href: `/api/${this.base}/annotations/table/export?${this.query({ format: fmt, reviewed: this.reviewedOnly ? "true" : null })}`,
      download: `${this.base.replace(/s\//, "-")}-annotations.${fmt}`,
    }, label);
    const reviewed = el("input", { type: "checkbox", id: "export-reviewed", checked: this.reviewedOnly });
    reviewed.addEventListener("change", () => { this.reviewedOnly = reviewed.checked; this.render(); });
    return [el("label", { class: "row", style: "margin:0;gap:.25rem", title: "Export only the accepted annotations" }, reviewed, "Reviewed only"),
      link("geojson", "export-geojson", "GeoJSON"), link("csv", "export-csv", "CSV"), link("xlsx", "export-xlsx", "Excel")];
  }

  bulkBar() {
    if (!this.selected.size) return null;
    const ids = [...this.selected];
    const run = async (action, extra = {}) => {
      try {
        const r = await api("annotations-bulk", { method: "POST", body: { action, ids, ...extra }, noRedirect: true });
        toast(`${r.done} annotation${r.done === 1 ? "" : "s"}: ${action.replace("_", " ")} done`);
        this.selected.clear();
        if (this.ctx.onChanged) this.ctx.onChanged();
        this.load();
      } catch (e) { toast(`Could not ${action.replace("_", " ")}: ${e.message}`, "error"); }
    };
    const term = el("select", { id: "bulk-term", "aria-label": "New term for the selected annotations" },
      el("option", { value: "" }, "No term"), this.ctx.terms().map((t) => el("option", { value: String(t.id) }, t.name)));
    const review = this.ctx.canReview && this.ctx.canReview();
    return el("div", { class: "row bulk-bar", id: "bulk-bar" },
      el("span", { class: "muted" }, `${ids.length} selected`), term,
      el("button", { type: "button", id: "bulk-set-term", onclick: () => run("set_terms", { terms: term.value ? [Number(term.value)] : [] }) }, "Set term"),
      review ? el("button", { type: "button", id: "bulk-accept", onclick: () => run("accept") }, "Accept") : null,
      review ? el("button", { type: "button", id: "bulk-reject", onclick: () => {
        const reason = window.prompt("Why are these annotations rejected?");
        if (reason && reason.trim()) run("reject", { reason: reason.trim() });
      } }, "Reject") : null,
      el("button", { type: "button", class: "danger", id: "bulk-delete", onclick: () => { if (window.confirm(`Delete ${ids.length} annotation(s)?`)) run("delete"); } }, "Delete"));
  }

  async goTo(row) {
    if (this.ctx.openRow) { this.ctx.openRow(row); return; }
    try {
      const f = await api(`annotations/${row.id}`, { noRedirect: true });
      this.ctx.goTo(f);
    } catch (e) { toast(`Could not open the annotation: ${e.message}`, "error"); }
  }

  render() {
    // One image: its pixel size decides; a project: each row (µm where known).
    const unitOf = (r) => (this.ctx.meta ? (this.ctx.meta.pixelUm ? "µm" : "px") : (r.area_um2 === null ? "px" : "µm"));
    const rows = this.data.items;
    const th = (key, label) => el("th", { scope: "col", "aria-sort": this.sort.key === key ? (this.sort.dir > 0 ? "ascending" : "descending") : "none" },
      el("button", { type: "button", class: "link", onclick: () => { this.sort = { key, dir: this.sort.key === key ? -this.sort.dir : 1 }; this.reset(); } }, label));
    // As the measurement under the viewer (tools.js measureText): 3 digits, mm from 0.1 mm² / 1 mm.
    const n = (v) => v.toLocaleString("en", { maximumSignificantDigits: 3 });
    const area = (v, unit) => (v === null ? "" : unit === "µm" && v >= 1e5 ? `${n(v / 1e6)} mm²` : `${n(v)} ${unit}²`);
    const len = (v, unit) => (v === null ? "" : unit === "µm" && v >= 1000 ? `${n(v / 1000)} mm` : `${n(v)} ${unit}`);
    const imageName = (id) => { const im = (this.ctx.images || []).find((x) => x.id === id); return im ? im.name : `image ${id}`; };
    const all = el("input", { type: "checkbox", "aria-label": "Select the page", checked: rows.length > 0 && rows.every((r) => this.selected.has(r.id)) });
    all.addEventListener("change", () => { for (const r of rows) if (all.checked) this.selected.add(r.id); else this.selected.delete(r.id); this.render(); });
    const body = el("tbody", {}, rows.map((r) => {
      const pick = el("input", { type: "checkbox", "aria-label": `Select annotation ${r.id}`, checked: this.selected.has(r.id) });
      pick.addEventListener("click", (e) => e.stopPropagation());
      pick.addEventListener("change", () => { if (pick.checked) this.selected.add(r.id); else this.selected.delete(r.id); this.render(); });
      const polygonal = POLYGONAL.has(r.kind);
      const unit = unitOf(r), um = unit === "µm";
      return el("tr", {
        dataset: { id: String(r.id), status: r.review_status, imageId: String(r.image_id) }, tabindex: "0", class: this.ctx.layer && r.id === this.ctx.layer.selectedId ? "current" : "",
        onclick: () => this.goTo(r),
        onkeydown: (e) => { if (e.key === "Enter") this.goTo(r); },
      },
      el("td", {}, pick), el("td", {}, String(r.id)),
      this.ctx.images ? el("td", {}, imageName(r.image_id)) : null, el("td", {}, r.kind),
      el("td", {}, r.terms.length ? r.terms.map((t) => this.termName(t)).join(", ") : el("span", { class: "muted" }, "—")),
      el("td", {}, r.author || (r.analysis_id ? `analysis #${r.analysis_id}` : "")),
      el("td", { class: "num" }, polygonal ? area(um ? r.area_um2 : r.area_px, unit) : ""),
      el("td", { class: "num" }, r.kind === "point" || r.kind === "multipoint" ? "" : len(um ? r.perimeter_um : r.perimeter_px, unit)),
      el("td", { class: "date" }, formatDate(r.created_at)),
      el("td", { class: `review ${r.review_status}`, title: r.review_reason || "" }, r.review_status),
      el("td", { class: "props", title: JSON.stringify(r.properties || {}) }, propsText(r.properties)),
      this.ctx.viewerHref ? el("td", {}, el("a", { href: this.ctx.viewerHref(r), class: "open-in-viewer", onclick: (e) => e.stopPropagation() }, "Open")) : null);
    }));
    const gallery = this.ctx.gallery && this.showGallery
      ? el("div", { class: "crop-gallery", id: "crop-gallery" }, rows.map((r) => el("button", { type: "button", class: "crop", title: `#${r.id}`, onclick: () => this.goTo(r) },
        el("img", { src: `/api/annotations/${r.id}/crop.jpg?size=128&pad=8`, alt: `Annotation ${r.id}`, loading: "lazy", width: "96", height: "96" }))))
      : null;
    const total = this.data.total ?? rows.length;
    this.box.replaceChildren(...[
      this.header(),
      el("div", { class: "row anno-table-tools" }, ...this.filters(),
        el("span", { class: "muted", id: "table-count" }, `${total}${this.data.total_capped ? "+" : ""} annotation${total === 1 ? "" : "s"}`),
        el("span", { style: "flex:1" }), ...this.exports(),
        this.ctx.gallery ? el("button", { type: "button", id: "toggle-gallery", "aria-pressed": String(Boolean(this.showGallery)), onclick: () => { this.showGallery = !this.showGallery; this.render(); } }, "Crops") : null),
      this.bulkBar(),
      gallery || el("div", { class: "table-scroll" }, el("table", {},
        el("thead", {}, el("tr", {}, el("th", { scope: "col" }, all), th("id", "#"), this.ctx.images ? th("image", "Image") : null, th("kind", "Kind"), th("term", "Term"), th("author", "Author"), th("area", "Area"), th("length", "Length / perimeter"), th("date", "Date"), th("status", "Review"), el("th", { scope: "col" }, "Properties"),
          this.ctx.viewerHref ? el("th", { scope: "col" }, el("span", { class: "sr-only" }, "Open")) : null)),
        body)),
      el("div", { class: "row pager" },
        el("button", { type: "button", id: "table-prev", disabled: this.page === 0, onclick: () => { this.page -= 1; this.load(); } }, "‹"),
        el("span", { class: "muted" }, `page ${this.page + 1} of ${Math.max(1, Math.ceil(total / PAGE))}${this.data.total_capped ? "+" : ""}`),
        el("button", { type: "button", id: "table-next", disabled: !this.data.next, onclick: () => { this.page += 1; this.load(); } }, "›")),
    ].filter(Boolean));
  }
}
