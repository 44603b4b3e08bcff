// Side by side from the project page: tick 2 to 4 images of the grid, then
// "Compare side by side" opens /compare?images=A,B[,C,D].  The choice holds
// across grid pages and searches.
import { el } from "./ui.js";

const MIN = 2, MAX = 4;
const chosen = new Map(); // image id → name, in the order ticked

let button = null, note = null;

function update() {
  const n = chosen.size;
  button.disabled = n < MIN || n > MAX;
  note.textContent = n ? `${n} selected${n > MAX ? ` (at most ${MAX})` : ""}` : "";
  button.title = n < MIN ? `Tick ${MIN} to ${MAX} images to view them side by side` : [...chosen.values()].join(" · ");
}

/** The button in the grid's toolbar (once). */
export function setupCompare(toolbar) {
  note = el("span", { id: "compare-count", class: "muted" });
  button = el("button", { type: "button", id: "compare-button", disabled: true, onclick: () => {
    if (chosen.size >= MIN && chosen.size <= MAX) location.assign(`/compare?images=${[...chosen.keys()].map(encodeURIComponent).join(",")}`);
  } }, "Compare side by side");
  toolbar.append(el("span", { class: "row compare-pick" }, button, note));
  update();
}

/** A "Compare" tick box on each ready image card (after each listing). */
export function decorateCompare(grid, list) {
  for (const im of list) {
    if (im.status && im.status !== "ready") continue;
    const body = grid.querySelector(`[data-image-id="${CSS.escape(String(im.id))}"] .body`);
    if (!body) continue;
    const id = String(im.id);
    const box = el("input", { type: "checkbox", class: "compare-check", checked: chosen.has(id), "aria-label": `Compare ${im.name}` });
    box.addEventListener("change", () => {
      if (box.checked) chosen.set(id, im.name); else chosen.delete(id);
      update();
    });
    body.append(el("label", { class: "compare-label muted", style: "margin:0;display:flex;gap:.3rem;align-items:center" }, box, "Compare"));
  }
}
