// Auto-contrast from the server's stored per-channel histograms
// (/images/{id}/histogram): clip the darkest and brightest 0.5 % of the
// image's pixels.  RGB slides get brightness/contrast values for the
// Display panel's CSS filter; multi-channel images get channel windows.

/** The image's histogram document (cached per page). */
const cache = new Map();
export async function fetchHistogram(imageUrl) {
  if (!cache.has(imageUrl)) {
    cache.set(imageUrl, fetch(imageUrl, { credentials: "same-origin" }).then((r) => {
      if (!r.ok) throw new Error(`histogram: HTTP ${r.status}`);
      return r.json();
    }));
  }
  try { return await cache.get(imageUrl); } catch (e) { cache.delete(imageUrl); throw e; }
}

/** Per channel [low, high] in stored units, at the given percentiles. */
export function channelWindows(hist, low = "0.5", high = "99.5") {
  return hist.channels.map((c) => {
    const lo = c.percentiles[low];
    // The percentile is a bin's lower edge: include that whole bin at the top.
    let hi = c.percentiles[high] + c.bin_width;
    if (!(hi > lo)) hi = lo + c.bin_width;
    return [lo, Math.min(hi, Math.max(c.max, lo + c.bin_width))];
  });
}

/**
 * CSS brightness(b) then contrast(c) that stretch [lo, hi] (0-1) onto 0-1:
 * out = (b·v − ½)·c + ½, so c = (hi + lo) / (hi − lo) and b = 1 / (hi + lo).
 * One stretch for the three colours (per-colour stretches would tint the slide).
 */
export function rgbStretch(hist, range = [0.2, 3]) {
  const w = channelWindows(hist);
  const lo = Math.min(...w.map((x) => x[0])) / 255;
  const hi = Math.min(1, Math.max(...w.map((x) => x[1])) / 255);
  const clamp = (v) => Math.min(range[1], Math.max(range[0], v));
  if (!(hi > lo)) return { bri: 1, con: 1 };
  return { bri: clamp(1 / (hi + lo)), con: clamp((hi + lo) / (hi - lo)) };
}
