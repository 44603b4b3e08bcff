// Pure helpers for physical scale: scale bar lengths and magnification zooms.

/** The largest "nice" length (1, 2, 5 × 10^n µm) that fits in maxPx screen pixels. */
export function niceScale(umPerScreenPx, maxPx = 150) {
  if (!(umPerScreenPx > 0)) return null;
  const maxUm = umPerScreenPx * maxPx;
  const pow = 10 ** Math.floor(Math.log10(maxUm));
  let um = pow;
  for (const m of [5, 2, 1]) {
    if (m * pow <= maxUm) { um = m * pow; break; }
  }
  return { um, px: um / umPerScreenPx };
}

/**
 * Objective power of level 0: the stored one when known, otherwise derived
 * from the pixel size (the usual convention: 10 µm/px ÷ objective, so
 * 0.25 µm/px ≈ 40x, 0.5 µm/px ≈ 20x).
 */
export function objectivePower(objective, pixelUm) {
  if (objective > 0) return objective;
  if (pixelUm > 0) return Math.round(10 / pixelUm);
  return null;
}

/** Magnifications worth offering: the standard ones up to the objective (plus one step of digital zoom). */
export function magnifications(objective) {
  if (!objective) return [];
  return [1, 5, 10, 20, 40, 80].filter((m) => m <= objective * 2 + 1e-9);
}
