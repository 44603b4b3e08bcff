// HTTP/1.1 domain sharding: when the server lists several tile base URLs
// (MICROTOME_TILE_URLS), tiles are spread across them so a browser limited to
// ~6 connections per host loads them in parallel.  Each tile always goes to
// the same host (chosen from its level, column and row) so the HTTP cache
// still hits.  Other hosts do not get this site's cookie: tiles carry a
// signed token (or the share token) in the image id instead.  Over HTTP/2
// (deploy/haproxy.cfg) none of this is needed and the list stays empty.
import { api } from "../api.js";

/** Pure: which base serves tile (level, x, y) among `bases` (stable, spread). */
export function pickBase(bases, level, x, y) {
  let h = 2166136261;
  for (const n of [level, x, y]) {
    h ^= n & 0xffff; h = Math.imul(h, 16777619);
    h ^= n >>> 16; h = Math.imul(h, 16777619);
  }
  return bases[(h >>> 0) % bases.length];
}

async function signedIdent(state) {
  if (state.token) return state.id;  // a share link's token already rides in the query
  try {
    const signed = await api(`images/${encodeURIComponent(state.id)}/signed-url`,
      { method: "POST", body: {}, noRedirect: true });
    return signed.image;
  } catch {
    return null;  // no right to mint tokens: tiles stay on this origin
  }
}

/** Spread the open image's tile URLs across the configured bases (if any),
 *  now and for every tile source opened later (filters, planes and channels
 *  reload the source). */
export async function shardTiles(state) {
  let bases = [];
  try { bases = (await api("tile-urls", { noRedirect: true })).items || []; } catch { return 0; }
  const viewer = state.viewer;
  if (!bases.length || !viewer) return 0;
  const ident = await signedIdent(state);
  if (!ident) return 0;
  const from = `/dzi/${encodeURIComponent(state.id)}_files/`;
  const to = `/dzi/${encodeURIComponent(ident)}_files/`;
  const patch = (item) => {
    const source = item && item.source;
    if (!source || source.microtomeSharded) return;
    const original = source.getTileUrl.bind(source);
    source.getTileUrl = (level, x, y) => {
      const url = original(level, x, y);
      const path = url.startsWith(from) ? to + url.slice(from.length) : url;
      return path.startsWith("/") ? pickBase(bases, level, x, y) + path : path;
    };
    source.microtomeSharded = true;
  };
  for (let i = 0; i < viewer.world.getItemCount(); i++) patch(viewer.world.getItemAt(i));
  viewer.world.addHandler("add-item", (e) => patch(e.item));
  window.microtome.tileBases = bases;
  return bases.length;
}
