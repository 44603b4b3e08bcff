// Small editors shared by the project page and the viewer: key/value
// properties, a Markdown description (rendered and sanitised by the server,
// shown as its HTML) and tags.  Each takes load/save functions over the API
// and redraws itself from what the server answers.
import { el, toast } from "./ui.js";

const show = (v) => (v !== null && typeof v === "object" ? JSON.stringify(v) : String(v));

/**
 * Key/value properties.  load() → {key: value}; save({key: value|null}) → {key: value}.
 * `id` prefixes the element ids (e.g. "project-props" → #project-props, #project-props-form).
 */
export function propertyEditor({ id, load, save, editable, label = "Properties" }) {
  const box = el("div", { id, class: "prop-editor" });
  let props = {};
  const apply = async (changes) => {
    try { props = await save(changes); render(); } catch (e) { toast(`Could not save the properties: ${e.message}`, "error"); }
  };
  const render = () => {
    const keys = Object.keys(props || {}).sort();
    const rows = keys.map((k) => el("tr", { dataset: { key: k } },
      el("th", { scope: "row" }, k), el("td", { class: "prop-value" }, show(props[k])),
      editable ? el("td", {}, el("button", { type: "button", class: "link", "aria-label": `Remove property ${k}`, title: "Remove", onclick: () => apply({ [k]: null }) }, "×")) : null));
    const form = editable ? el("form", { id: `${id}-form`, class: "row", "aria-label": `Set a ${label.toLowerCase()} entry` },
      el("input", { name: "key", placeholder: "key", "aria-label": "Property key", required: true, size: 10, maxlength: "64" }),
      el("input", { name: "value", placeholder: "value", "aria-label": "Property value", size: 14 }),
      el("button", { type: "submit" }, "Set")) : null;
    if (form) {
      form.addEventListener("submit", (ev) => {
        ev.preventDefault();
        const f = form.elements;
        apply({ [f.key.value.trim()]: f.value.value === "" ? null : f.value.value });
      });
    }
    box.replaceChildren(el("h3", {}, label),
      keys.length ? el("table", { class: "props" }, el("tbody", {}, rows)) : el("p", { class: "muted" }, "None yet."),
      form);
  };
  box.reload = async () => { try { props = await load(); } catch { props = {}; } render(); };
  box.reload();
  return box;
}

/**
 * A Markdown description.  load() / save(text) → {description, description_html}.
 * The HTML comes from the server, rendered with raw HTML off and sanitised (nh3).
 */
export function descriptionEditor({ id, load, save, editable }) {
  const box = el("div", { id, class: "desc-editor" });
  let about = { description: "", description_html: "" };
  const view = () => {
    const html = el("div", { class: "description" });
    // Safe: rendered with raw HTML disabled and sanitised with an allow-list on the server.
    html.innerHTML = about.description_html;
    box.replaceChildren(
      about.description_html ? html : el("p", { class: "muted description-empty" }, "No description."),
      editable ? el("button", { type: "button", id: `${id}-edit`, onclick: edit }, "Edit description") : null);
  };
  const edit = () => {
    const text = el("textarea", { id: `${id}-text`, rows: "6", "aria-label": "Description (Markdown)", style: "width:100%" });
    text.value = about.description;
    const form = el("form", { id: `${id}-form` }, text,
      el("p", { class: "muted", style: "margin:.2rem 0" }, "Markdown: **bold**, *italic*, lists, links, tables."),
      el("div", { class: "row" },
        el("button", { type: "submit", class: "primary", id: `${id}-save` }, "Save"),
        el("button", { type: "button", onclick: view }, "Cancel")));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try { about = await save(text.value); view(); } catch (e) { toast(`Could not save the description: ${e.message}`, "error"); }
    });
    box.replaceChildren(form);
    text.focus();
  };
  box.reload = async () => { try { about = await load(); } catch { /* keep empty */ } view(); };
  box.reload();
  return box;
}

/** Tags.  load() → [tag]; save([tag]) → [tag].  Entered comma-separated. */
export function tagsEditor({ id, load, save, editable }) {
  const box = el("div", { id, class: "tags-editor" });
  let tags = [];
  const view = () => {
    box.replaceChildren(
      tags.length ? el("p", { class: "tags" }, tags.map((t) => el("span", { class: "badge" }, t))) : null,
      editable ? el("button", { type: "button", id: `${id}-edit`, onclick: edit }, "Edit tags") : null);
  };
  const edit = () => {
    const input = el("input", { id: `${id}-input`, value: tags.join(", "), "aria-label": "Tags, separated by commas", size: 30 });
    const form = el("form", { id: `${id}-form`, class: "row" }, input,
      el("button", { type: "submit", class: "primary", id: `${id}-save` }, "Save"),
      el("button", { type: "button", onclick: view }, "Cancel"));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const want = input.value.split(",").map((t) => t.trim()).filter(Boolean);
      try { tags = await save(want); view(); } catch (e) { toast(`Could not save the tags: ${e.message}`, "error"); }
    });
    box.replaceChildren(form);
    input.focus();
  };
  box.reload = async () => { try { tags = await load(); } catch { tags = []; } view(); };
  box.reload();
  return box;
}
