// Small DOM and FHIR display helpers of the demo.

/** An element: `h("p", { class: "x", onclick: f }, "text", child)`; null children are left out. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function clear(element) {
  element.replaceChildren();
  return element;
}

export const when = (condition, make) => (condition ? make() : null);

/** The text of a CodeableConcept (or Coding). */
export function codeText(concept) {
  if (!concept) return "";
  return concept.text ?? concept.coding?.find((c) => c.display)?.display ?? concept.display ?? concept.coding?.[0]?.code ?? concept.code ?? "";
}

export function quantityText(quantity) {
  if (!quantity || quantity.value === undefined) return "";
  const value = Number.isInteger(quantity.value) ? quantity.value : Number(quantity.value).toFixed(1);
  return `${value} ${quantity.unit ?? quantity.code ?? ""}`.trim();
}

export function humanName(names) {
  const name = names?.find((n) => n.use === "official") ?? names?.[0];
  if (!name) return "(no name)";
  return name.text ?? [...(name.prefix ?? []), ...(name.given ?? []), name.family].filter(Boolean).join(" ");
}

const dateFormat = new Intl.DateTimeFormat("en", { year: "numeric", month: "short", day: "numeric" });
const dateTimeFormat = new Intl.DateTimeFormat("en", { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });

export function dateText(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : dateFormat.format(date);
}

export function dateTimeText(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : dateTimeFormat.format(date);
}
