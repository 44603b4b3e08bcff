// A form generated from an app's parameter JSON Schema: enums as selects,
// booleans as check boxes, numbers and integers with their ranges, strings,
// nullable values ("auto" when left empty) and term pickers (an integer, or
// an array of integers, with "format": "term").
import { el } from "../../ui.js";
import { modelField } from "./models.js";

const isTerm = (p) => p.format === "term" || (p.items && p.items.format === "term");
const types = (p) => (Array.isArray(p.type) ? p.type : [p.type]);

/** One field's widget and its reader; `terms` is [{id, name, color}]. */
function field(name, prop, terms) {
  if (prop.format === "analysis-model") return modelField(name, prop); // trained models: models.js
  const id = `param-${name}`;
  const label = prop.title || name;
  const help = prop.description ? el("small", { class: "muted param-help" }, prop.description) : null;
  const t = types(prop);
  const nullable = t.includes("null");
  let input;
  let read;
  if (isTerm(prop)) {
    const many = t.includes("array");
    input = el("select", { id, name, multiple: many || undefined, "aria-label": label },
      ...(many ? [] : [el("option", { value: "" }, nullable ? "(none)" : "Choose a term")]),
      ...terms.map((term) => el("option", { value: String(term.id) }, term.name)));
    read = () => {
      const ids = [...input.selectedOptions].map((o) => Number(o.value)).filter((v) => v > 0);
      return many ? ids : (ids.length ? ids[0] : (nullable ? null : undefined));
    };
  } else if (prop.enum) {
    input = el("select", { id, name }, ...prop.enum.map((v) => el("option", { value: String(v), selected: v === prop.default || undefined }, String(v))));
    read = () => prop.enum.find((v) => String(v) === input.value);
  } else if (t.includes("boolean")) {
    input = el("input", { id, name, type: "checkbox", checked: prop.default === true || undefined });
    read = () => input.checked;
  } else if (t.includes("number") || t.includes("integer")) {
    const min = prop.minimum ?? prop.exclusiveMinimum;
    const max = prop.maximum ?? prop.exclusiveMaximum;
    input = el("input", {
      id, name, type: "number", step: t.includes("integer") ? "1" : "any",
      min: min ?? undefined, max: max ?? undefined,
      value: prop.default ?? "", placeholder: nullable ? "auto" : "",
    });
    read = () => {
      if (input.value === "") return nullable ? null : undefined;
      return Number(input.value);
    };
  } else {
    input = el("input", { id, name, type: "text", value: prop.default ?? "", placeholder: nullable ? "(none)" : "" });
    read = () => (input.value === "" && nullable ? null : input.value);
  }
  const error = el("small", { class: "param-error", role: "alert", hidden: true });
  const range = (prop.minimum !== undefined || prop.maximum !== undefined)
    ? ` (${prop.minimum ?? "…"}–${prop.maximum ?? "…"})` : "";
  const row = el("div", { class: "param" },
    t.includes("boolean") && !isTerm(prop)
      ? el("label", { for: id, style: "display:flex;gap:.4rem;align-items:center" }, input, label)
      : el("label", { for: id }, label + range),
    t.includes("boolean") && !isTerm(prop) ? null : input, help, error);
  return { name, row, read, error };
}

/** {element, values(), showErrors(fields)} for `schema`. */
export function schemaForm(schema, terms = []) {
  const props = (schema && schema.properties) || {};
  const fields = Object.entries(props).map(([name, prop]) => field(name, prop, terms));
  const element = el("div", { class: "param-form" }, ...fields.map((f) => f.row));
  if (!fields.length) element.append(el("p", { class: "muted" }, "No parameters."));
  return {
    element,
    values() {
      const out = {};
      for (const f of fields) {
        const v = f.read();
        if (v !== undefined) out[f.name] = v;
      }
      return out;
    },
    /** The server's 400 detail.fields (name → message) next to each field. */
    showErrors(errors = {}) {
      for (const f of fields) {
        const msg = errors[f.name];
        f.error.hidden = !msg;
        f.error.textContent = msg || "";
      }
    },
  };
}
