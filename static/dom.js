// Tiny element builder. Every string child becomes a text node, so frame data is never parsed as HTML.

/** Create an element with attributes and children; strings and numbers are added as text. */
export function h(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  setAttributes(node, attributes);
  node.append(...children.flat().filter(isPresent).map((c) => (c instanceof Node ? c : String(c))));
  return node;
}

/** Create an SVG element (namespaced) with attributes. */
export function svg(tag, attributes = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  setAttributes(node, attributes);
  return node;
}

function setAttributes(node, attributes) {
  for (const [name, value] of Object.entries(attributes)) {
    if (isPresent(value)) node.setAttribute(name, value === true ? "" : String(value));
  }
}

function isPresent(value) {
  return value !== null && value !== undefined && value !== false;
}
