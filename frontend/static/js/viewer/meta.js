// Normalises /images/{id}/metadata into the few fields the viewer uses.
// Tolerant on purpose: standalone tile servers and older images may omit fields.

function num(v) { const n = Number(v); return Number.isFinite(n) && n > 0 ? n : null; }

function pixelSize(m) {
  const p = m.pixel_size_um ?? m.pixel_size ?? m.mpp ?? m.physical_size;
  if (Array.isArray(p)) return num(p[0]);
  if (p && typeof p === "object") return num(p.x ?? p.width);
  return num(p);
}

function channel(c, i) {
  const color = String(c.color || c.colour || "FFFFFF").replace(/^#/, "");
  const w = c.window || {};
  const min = Number(w.min ?? c.window_min ?? 0);
  const max = Number(w.max ?? c.window_max ?? 255);
  return {
    index: i,
    label: c.label || c.name || `Channel ${i + 1}`,
    color: `#${color.padStart(6, "0").slice(0, 6)}`,
    start: Number(w.start ?? c.window_start ?? min),
    end: Number(w.end ?? c.window_end ?? max),
    min, max,
    active: c.active !== false,
  };
}

export function normalizeMeta(m) {
  m = m || {};
  const channels = Array.isArray(m.channels) ? m.channels.map(channel) : [];
  const assoc = m.associated ?? m.associated_images ?? [];
  return {
    name: m.name || "",
    width: Number(m.width ?? m.size_x ?? 0),
    height: Number(m.height ?? m.size_y ?? 0),
    pixelUm: pixelSize(m),
    objective: num(m.objective_power ?? (m.source && m.source.objective_power) ?? m.objective ?? m.magnification),
    levels: Array.isArray(m.levels) ? m.levels.length : num(m.levels),
    kind: m.kind || (channels.length > 1 ? "fluorescence" : "rgb"),
    dtype: m.dtype || "uint8",
    channels,
    sizeZ: Number(m.size_z ?? (m.size && m.size.z) ?? 1) || 1,
    sizeT: Number(m.size_t ?? (m.size && m.size.t) ?? 1) || 1,
    format: m.format || (m.source && m.source.format) || "",
    associated: Array.isArray(assoc) ? assoc : Object.keys(assoc || {}),
    raw: m,
  };
}
