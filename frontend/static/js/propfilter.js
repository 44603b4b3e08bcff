// Image grid: filter and sort by any image property (key = value), and show the value.
import { api, items } from "./api.js";
import { el } from "./ui.js";

const state = { key: "", value: "", sortKey: "", desc: false, keys: [] };

// Controls in the grid's toolbar; `onChange` reloads the grid.
export async function setupPropertyFilter(projectId, toolbar, onChange) {
  const keySel = el("select", { id: "prop-key", "aria-label": "Filter by property" },
    el("option", { value: "" }, "Any property"));
  const valueIn = el("input", { id: "prop-value", type: "search", placeholder: "value", "aria-label": "Property value", size: 10 });
  const sortSel = el("select", { id: "prop-sort", "aria-label": "Sort by property" },
    el("option", { value: "" }, "No property sort"));
  let timer = null;
  const changed = () => {
    state.key = keySel.value; state.value = valueIn.value.trim();
    const s = sortSel.value; state.desc = s.startsWith("-"); state.sortKey = s.replace(/^-/, "");
    onChange();
  };
  keySel.addEventListener("change", changed);
  sortSel.addEventListener("change", changed);
  valueIn.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(changed, 250); });
  toolbar.append(el("span", { class: "row prop-filter" }, keySel, valueIn, sortSel));
  try {
    state.keys = items(await api(`projects/${encodeURIComponent(projectId)}/property-keys`)).map((k) => k.key);
  } catch { state.keys = []; }
  for (const k of state.keys) {
    keySel.append(el("option", { value: k }, k));
    sortSel.append(el("option", { value: k }, `${k} ↑`), el("option", { value: `-${k}` }, `${k} ↓`));
  }
}

// Adds prop=key=value and sort=prop:key to the image list's query.
export function applyPropertyParams(q) {
  if (state.key && state.value) q.append("prop", `${state.key}=${state.value}`);
  if (state.sortKey) q.set("sort", `${state.desc ? "-" : ""}prop:${state.sortKey}`);
}

// The shown property (the filtered or sorted one) under each card's name, as text.
export function decorateCards(grid, list) {
  const key = state.sortKey || state.key;
  if (!key) return;
  for (const im of list) {
    const card = grid.querySelector(`[data-image-id="${CSS.escape(String(im.id))}"] .body`);
    const value = (im.properties || {})[key];
    if (card) card.append(el("span", { class: "meta prop-value", dataset: { key } }, `${key}: ${value ?? "—"}`));
  }
}
