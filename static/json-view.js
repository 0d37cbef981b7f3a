// Pretty-printed, syntax-coloured JSON (the layout of JSON.stringify(value, null, 2)) built from
// text nodes and spans, so strings from the server can never become markup.

import { h } from "./dom.js";

const INDENT = "  ";

/** Render a parsed JSON value into a DocumentFragment of coloured tokens. */
export function renderJson(value) {
  const fragment = document.createDocumentFragment();
  appendValue(fragment, value, 0);
  return fragment;
}

function appendValue(parent, value, depth) {
  if (Array.isArray(value)) {
    appendContainer(parent, "[", "]", value.map((item) => [null, item]), depth);
  } else if (value !== null && typeof value === "object") {
    appendContainer(parent, "{", "}", Object.entries(value), depth);
  } else {
    const kind = value === null ? "null" : typeof value; // "string" | "number" | "boolean"
    parent.append(token(kind, JSON.stringify(value)));
  }
}

function appendContainer(parent, open, close, entries, depth) {
  if (entries.length === 0) {
    parent.append(token("punct", open + close));
    return;
  }
  parent.append(token("punct", open));
  entries.forEach(([key, item], index) => {
    parent.append(`\n${INDENT.repeat(depth + 1)}`);
    if (key !== null) parent.append(token("key", JSON.stringify(key)), token("punct", ": "));
    appendValue(parent, item, depth + 1);
    if (index < entries.length - 1) parent.append(token("punct", ","));
  });
  parent.append(`\n${INDENT.repeat(depth)}`, token("punct", close));
}

function token(kind, text) {
  return h("span", { class: `json-${kind}` }, text);
}
