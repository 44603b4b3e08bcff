// Channel panel for multi-channel (fluorescence) images: toggle, colour,
// window sliders, z/t sliders.  Changes are turned into the tile server's
// rendering query parameters (see tileserver/render.py) and the tiles are
// reloaded, debounced so dragging a slider does not flood the server.
import { el } from "../ui.js";

/**
 * The tile-server query string for these channel settings and plane.
 * `plane` is 0-based as in URLs; z and t are sent whenever the image has
 * more than one (plane 0 must be asked for: the server's default is the
 * middle plane).
 */
export function renderQuery(channels, plane, sizes) {
  const q = new URLSearchParams();
  if (channels.length) {
    const active = channels.filter((c) => c.active);
    q.set("channels", active.map((c) => c.index).join(","));
    q.set("colors", active.map((c) => c.color.replace("#", "")).join(","));
    q.set("windows", active.map((c) => `${c.start}:${c.end}`).join(","));
  }
  if (sizes.z > 1) q.set("z", String(plane.z));
  if (sizes.t > 1) q.set("t", String(plane.t));
  return q.toString();
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

export function setupChannels(state, reloadTiles) {
  const { meta } = state;
  // RGB brightfield is rendered as stored; the panel is for "nd" images.
  const multi = meta.kind !== "rgb" && meta.channels.length > 0;
  if (!multi && meta.sizeZ <= 1 && meta.sizeT <= 1) return;
  document.querySelector("#channel-panel").hidden = false;
  const chans = meta.channels.map((c) => ({ ...c }));
  // The tile server shows the middle z plane by default.
  const plane = { z: Math.floor(meta.sizeZ / 2), t: 0 };
  const sizes = { z: meta.sizeZ, t: meta.sizeT };
  const apply = debounce(() => reloadTiles(renderQuery(chans, plane, sizes)), 250);
  const box = document.querySelector("#channels");
  const step = meta.dtype.includes("float") ? "any" : "1";
  for (const c of (multi ? chans : [])) {
    const id = `ch-${c.index}`;
    const onoff = el("input", { type: "checkbox", id, checked: c.active, "aria-label": `Show ${c.label}` });
    onoff.addEventListener("change", () => { c.active = onoff.checked; apply(); });
    const colour = el("input", { type: "color", value: c.color, "aria-label": `Colour of ${c.label}` });
    colour.addEventListener("input", () => { c.color = colour.value; apply(); });
    const lo = el("input", { type: "range", min: c.min, max: c.max, step, value: c.start, "aria-label": `${c.label} window start` });
    const hi = el("input", { type: "range", min: c.min, max: c.max, step, value: c.end, "aria-label": `${c.label} window end` });
    const readout = el("span", { class: "muted" }, `${c.start}–${c.end}`);
    const onWindow = () => {
      c.start = Math.min(Number(lo.value), Number(hi.value));
      c.end = Math.max(Number(lo.value), Number(hi.value));
      readout.textContent = `${c.start}–${c.end}`;
      apply();
    };
    lo.addEventListener("input", onWindow);
    hi.addEventListener("input", onWindow);
    box.append(el("div", { class: "channel" },
      onoff, el("label", { for: id, style: "margin:0;color:inherit" }, c.label), colour,
      el("div", { class: "window" }, lo, hi), readout));
  }
  // Planes and time points are labelled from 1 as in OMERO and QuPath; the
  // slider value and the URLs stay 0-based.
  const planes = document.querySelector("#planes");
  const names = { z: "Z plane", t: "Time point" };
  for (const [axis, size] of [["z", meta.sizeZ], ["t", meta.sizeT]]) {
    if (size <= 1) continue;
    const label = (i) => `${i + 1} of ${size}`;
    const out = el("output", { id: `plane-${axis}-label` }, label(plane[axis]));
    const slider = el("input", { type: "range", min: 0, max: size - 1, step: 1, value: plane[axis], id: `plane-${axis}`, "aria-label": names[axis], title: `${names[axis]} (0-based in URLs: ${axis}=${plane[axis]})` });
    slider.addEventListener("input", () => {
      plane[axis] = Number(slider.value);
      out.textContent = label(plane[axis]);
      slider.title = `${names[axis]} (0-based in URLs: ${axis}=${plane[axis]})`;
      apply();
    });
    planes.append(el("label", { for: `plane-${axis}` }, `${names[axis]} `, out), slider);
  }
}
