// Mass spectrometry images (imzML conversions): click a pixel to see its
// spectrum (GET /images/{id}/spectrum?x=&y=), pick an m/z ± tolerance (typed,
// from the conversion's peaks, or by clicking the spectrum) to show that ion
// image over the slide (GET /images/{id}/ion-image?mz=&tol=, a grey PNG scaled
// to its maximum).  The spectrum downloads as CSV, the ion image as PNG/JSON.
import { el, toast } from "../ui.js";

const SVG = "http://www.w3.org/2000/svg";
const W = 280;
const H = 140;
const PAD = 4;

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

function query(app, params) {
  const q = new URLSearchParams(params);
  if (app.token) q.set("share", app.token);
  return q.toString();
}

function url(app, path, params) {
  return `/images/${encodeURIComponent(app.id)}/${path}?${query(app, params)}`;
}

/** m/z values and the tolerance chosen at conversion, from the channel labels ("m/z 152.0000 ± 0.1667"). */
function conversionPeaks(meta) {
  const peaks = [];
  let tol = null;
  for (const c of meta.channels) {
    const m = /^m\/z\s+([\d.]+)\s*±\s*([\d.eE+-]+)/.exec(c.label);
    if (m) { peaks.push(Number(m[1])); tol = Number(m[2]); }
  }
  return { peaks, tol };
}

function fmt(v) { return Number(v).toLocaleString("en", { maximumSignificantDigits: 6 }); }

class MsiPanel {
  constructor(app, panel) {
    this.app = app;
    this.panel = panel;
    this.spectrum = null;
    this.layer = null;
    const { peaks, tol } = conversionPeaks(app.meta);
    this.mz = el("input", { id: "msi-mz", type: "number", step: "any", min: "0", size: "9", "aria-label": "m/z", placeholder: "m/z" });
    this.tol = el("input", { id: "msi-tol", type: "number", step: "any", min: "0", size: "6", "aria-label": "m/z tolerance (±)", value: tol ?? "" });
    this.opacity = el("input", { id: "msi-opacity", type: "range", min: "0", max: "1", step: "0.05", value: "1", "aria-label": "Ion image opacity" });
    this.opacity.addEventListener("input", () => this.layer && this.layer.setOpacity(Number(this.opacity.value)));
    const form = el("form", { id: "msi-form", class: "row" }, "m/z ", this.mz, " ± ", this.tol,
      el("button", { type: "submit" }, "Show"),
      el("button", { type: "button", id: "msi-clear", onclick: () => this.clearLayer() }, "Hide"));
    form.addEventListener("submit", (ev) => { ev.preventDefault(); this.showIon(); });
    const picks = el("div", { class: "msi-peaks" }, peaks.map((p) => el("button", {
      type: "button", class: "chip", title: `Show the ion image of m/z ${p}`,
      onclick: () => { this.mz.value = p; this.showIon(); } }, fmt(p))));
    this.ionInfo = el("p", { id: "msi-ion", class: "muted", "aria-live": "polite" });
    this.plot = svg("svg", { id: "msi-spectrum", width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "Spectrum of the clicked pixel" });
    this.plot.style.cursor = "crosshair";
    this.plot.addEventListener("click", (ev) => this.pickFromPlot(ev));
    this.where = el("p", { id: "msi-pixel", class: "muted", "aria-live": "polite" }, "Click a pixel of the image to see its spectrum.");
    this.csv = el("a", { id: "msi-csv", href: "#", download: "spectrum.csv", hidden: true }, "Spectrum as CSV");
    panel.replaceChildren(el("h2", {}, "Mass spectrometry"),
      el("h3", {}, "Ion image"), form, picks, el("label", {}, "Opacity ", this.opacity), this.ionInfo,
      el("h3", {}, "Spectrum"), this.where, this.plot, this.csv);
    panel.hidden = false;
  }

  /** Level-0 pixel under a click on the slide, or null outside the image. */
  pixelAt(position) {
    const item = this.app.viewer.world.getItemAt(0);
    if (!item) return null;
    const p = item.viewerElementToImageCoordinates(position);
    const x = Math.floor(p.x);
    const y = Math.floor(p.y);
    const { width, height } = this.app.meta;
    return x >= 0 && y >= 0 && x < width && y < height ? { x, y } : null;
  }

  async loadSpectrum(x, y) {
    this.where.textContent = `Pixel (${x}, ${y}): loading…`;
    const res = await fetch(url(this.app, "spectrum", { x, y }), { credentials: "same-origin" });
    const doc = await res.json().catch(() => ({}));
    if (!res.ok) { this.where.textContent = doc.error || `spectrum unavailable (${res.status})`; return; }
    this.spectrum = doc;
    this.drawSpectrum();
  }

  drawSpectrum() {
    const { mz, intensity, x, y } = this.spectrum;
    this.plot.replaceChildren();
    if (!mz.length) {
      this.where.textContent = `Pixel (${x}, ${y}): no spectrum was recorded here.`;
      this.csv.hidden = true;
      return;
    }
    const lo = mz[0];
    const hi = mz[mz.length - 1];
    const top = Math.max(...intensity) || 1;
    this.range = { lo, hi };
    const sx = (m) => PAD + ((m - lo) / (hi - lo || 1)) * (W - 2 * PAD);
    const sy = (v) => H - PAD - (v / top) * (H - 2 * PAD);
    const d = mz.map((m, i) => `${i ? "L" : "M"}${sx(m).toFixed(1)} ${sy(intensity[i]).toFixed(1)}`).join("");
    this.plot.append(svg("rect", { x: 0, y: 0, width: W, height: H, fill: "transparent" }),
      svg("path", { d, fill: "none", stroke: "currentColor", "stroke-width": 1 }));
    if (this.mz.value) {
      const m = sx(Number(this.mz.value));
      this.plot.append(svg("line", { x1: m, x2: m, y1: 0, y2: H, stroke: "#d33", "stroke-dasharray": "3 2" }));
    }
    const best = intensity.indexOf(top);
    this.where.textContent = `Pixel (${x}, ${y}): ${mz.length.toLocaleString()} points, m/z ${fmt(lo)}–${fmt(hi)}, strongest at m/z ${fmt(mz[best])}. Click the plot to pick an m/z.`;
    const rows = mz.map((m, i) => `${m},${intensity[i]}`);
    if (this.csv.href.startsWith("blob:")) URL.revokeObjectURL(this.csv.href);
    this.csv.href = URL.createObjectURL(new Blob([`mz,intensity\n${rows.join("\n")}\n`], { type: "text/csv" }));
    this.csv.download = `spectrum_x${x}_y${y}.csv`;
    this.csv.hidden = false;
  }

  pickFromPlot(ev) {
    if (!this.spectrum || !this.spectrum.mz.length) return;
    const box = this.plot.getBoundingClientRect();
    const f = (ev.clientX - box.left - PAD) / (box.width - 2 * PAD);
    const { mz, intensity } = this.spectrum;
    const want = this.range.lo + Math.min(1, Math.max(0, f)) * (this.range.hi - this.range.lo);
    // Snap to the strongest point within a few pixels of the click.
    const reach = (4 / box.width) * (this.range.hi - this.range.lo);
    let pick = -1;
    for (let i = 0; i < mz.length; i += 1) {
      if (Math.abs(mz[i] - want) <= reach && (pick < 0 || intensity[i] > intensity[pick])) pick = i;
    }
    this.mz.value = pick >= 0 ? mz[pick] : want.toPrecision(7);
    this.showIon();
  }

  async showIon() {
    const mz = Number(this.mz.value);
    if (!(mz > 0)) { toast("Type an m/z above 0", "error"); return; }
    const params = { mz };
    if (this.tol.value !== "") params.tol = Number(this.tol.value);
    const src = url(this.app, "ion-image", params);
    const res = await fetch(src, { credentials: "same-origin" });
    if (!res.ok) {
      const doc = await res.json().catch(() => ({}));
      this.ionInfo.textContent = doc.error || `ion image unavailable (${res.status})`;
      return;
    }
    const top = Number(res.headers.get("X-Ion-Max"));
    const blobUrl = URL.createObjectURL(await res.blob());
    const { viewer } = this.app;
    const base = viewer.world.getItemAt(0);
    const bounds = base.getBounds();
    const old = this.layer;
    viewer.addTiledImage({
      tileSource: { type: "image", url: blobUrl, buildPyramid: false },
      x: bounds.x, y: bounds.y, width: bounds.width,
      opacity: Number(this.opacity.value),
      success: (e) => {
        if (old) viewer.world.removeItem(old);
        this.layer = e.item;
        this.layerUrl = blobUrl;
        window.microtome.msi = { mz, tol: params.tol ?? null, max: top, layers: viewer.world.getItemCount() };
      },
      error: () => toast("Could not show the ion image", "error"),
    });
    const tol = params.tol ?? "the conversion's tolerance";
    this.ionInfo.replaceChildren(`Ion image m/z ${fmt(mz)} ± ${typeof tol === "number" ? fmt(tol) : tol}: white = ${fmt(top)} (its maximum). `,
      el("a", { id: "msi-ion-png", href: src, download: `ion_${mz}.png` }, "PNG"), " · ",
      el("a", { id: "msi-ion-json", href: url(this.app, "ion-image", { ...params, format: "json" }), download: `ion_${mz}.json` }, "values (JSON)"));
    if (this.spectrum) this.drawSpectrum();
  }

  clearLayer() {
    if (this.layer) this.app.viewer.world.removeItem(this.layer);
    this.layer = null;
    this.ionInfo.textContent = "";
    window.microtome.msi = { layers: this.app.viewer.world.getItemCount() };
  }
}

/** The panel, for images converted from imzML (their metadata lists the spectra routes). */
export function setupMsi(app) {
  const panel = document.querySelector("#msi-panel");
  const source = app.meta.raw.source || {};
  if (!panel || !source.spectra) return null;
  const msi = new MsiPanel(app, panel);
  // Spectra are pixels: show them as squares rather than smoothed blobs.
  if (app.viewer.drawer && app.viewer.drawer.setImageSmoothingEnabled) app.viewer.drawer.setImageSmoothingEnabled(false);
  app.viewer.addHandler("canvas-click", (e) => {
    if (!e.quick) return;
    const px = msi.pixelAt(e.position);
    if (px) msi.loadSpectrum(px.x, px.y).catch((err) => toast(`Spectrum: ${err.message}`, "error"));
  });
  return msi;
}
