// Keyboard: when a key belongs to the page's shortcuts (not to a field being
// typed in), and the shortcut help overlay opened with "?".
import { el } from "../ui.js";

const TEXT_INPUTS = new Set(["text", "search", "email", "url", "password", "number", "tel", "date", "time", "datetime-local", "month", "week"]);

/**
 * Is the user typing into a field?  Only text entry keeps keys for itself:
 * after a click on a checkbox, radio, slider, colour or button in the side
 * panel the shortcuts keep working.
 */
export function isTyping(e) {
  const t = e.target;
  if (!(t instanceof Element)) return false;
  if (t.closest("textarea, select, [contenteditable]")) return true;
  if (t instanceof HTMLInputElement) return TEXT_INPUTS.has(t.type);
  // A modal dialog (share, term, help) owns the keyboard while open.
  return Boolean(t.closest("dialog[open]"));
}

export const SHORTCUTS = [
  ["View", [
    ["+ / −", "Zoom in / out"], ["0", "Fit the whole slide"], ["Arrow keys", "Pan"],
    ["r / Shift+R", "Rotate right / left"], ["f", "Full screen"], ["l", "Copy a link to this view"],
    ["[ / ]", "Previous / next image of the project"], ["m", "Type a magnification"],
  ]],
  ["Annotations", [
    ["v", "Pan"], ["s", "Select, move, edit vertices"], ["p", "Point"], ["i", "Line"], ["g", "Polygon"],
    ["d", "Freehand"], ["b", "Rectangle"], ["c", "Circle"],
    ["Enter", "Finish a line or polygon"], ["Backspace", "Drop the last vertex while drawing"],
    ["Delete", "Delete the selected annotation"], ["Escape", "Cancel drawing / clear the selection"],
    ["Ctrl+Z", "Undo"], ["Ctrl+Shift+Z / Ctrl+Y", "Redo"],
  ]],
  ["Help", [["?", "Show this list"]]],
];

export function setupShortcutHelp() {
  const dlg = el("dialog", { id: "shortcut-help", "aria-labelledby": "shortcut-help-title" });
  dlg.append(
    el("h2", { id: "shortcut-help-title" }, "Keyboard shortcuts"),
    ...SHORTCUTS.map(([group, rows]) => el("section", {},
      el("h3", {}, group),
      el("dl", { class: "shortcuts" }, rows.flatMap(([k, what]) => [el("dt", {}, el("kbd", {}, k)), el("dd", {}, what)])))),
    el("div", { class: "buttons" }, el("button", { type: "button", class: "primary", onclick: () => dlg.close() }, "Close")));
  document.body.append(dlg);
  document.addEventListener("keydown", (e) => {
    if (e.key !== "?" || e.ctrlKey || e.metaKey || e.altKey || isTyping(e)) return;
    e.preventDefault();
    if (dlg.open) dlg.close(); else dlg.showModal();
  });
  return dlg;
}
