// How the page talks to the selected stream: WebSocket, Server-Sent Events or Socket.IO. The choice
// lives in the page's address (?transport=sse), so a link or a reload opens the same view; the rest
// of the query string (?token=…) is passed on to the server untouched.

import { h } from "./dom.js";

export const TRANSPORTS = [
  { id: "websocket", label: "WebSocket" },
  { id: "sse", label: "SSE", title: "Server-Sent Events (the browser's EventSource)" },
  { id: "socketio", label: "Socket.IO" },
];
const DEFAULT_TRANSPORT = "websocket";
const PARAM = "transport";
const ENGINE_IO_PATH = "/socket.io/?EIO=4&transport=websocket";

/** The transport the page's address asks for (`?transport=sse`); WebSocket when it names none we know. */
export function chosenTransport(search = location.search) {
  const id = new URLSearchParams(search).get(PARAM);
  return TRANSPORTS.some((transport) => transport.id === id) ? id : DEFAULT_TRANSPORT;
}

/** The page's query string with the transport set to `id` (the default leaves it out), other fields as they were. */
export function withTransport(search, id) {
  const fields = otherFields(search);
  if (id !== DEFAULT_TRANSPORT) fields.push(`${PARAM}=${id}`);
  return fields.length > 0 ? `?${fields.join("&")}` : "";
}

/** The query string the server gets: the page's own, minus `transport` (a token stays exactly as typed). */
export function passedOn(search = location.search) {
  const fields = otherFields(search);
  return fields.length > 0 ? `?${fields.join("&")}` : "";
}

function otherFields(search) {
  const fields = search.replace(/^\?/, "").split("&").filter((field) => field !== "");
  return fields.filter((field) => field.split("=")[0] !== PARAM);
}

/** http: or https: URL of a path on the host that served this page, with the query string passed on. */
export function eventsUrl(path, search = passedOn()) {
  return `${location.protocol}//${location.host}${path}${search}`;
}

/** What to pass to `io()` for a namespace: this host, then the namespace ("/" is the host alone). */
export function socketIoUrl(namespace, search = passedOn()) {
  return `${location.protocol}//${location.host}${namespace === "/" ? "" : namespace}${search}`;
}

/**
 * ws: or wss: URL of the server's Engine.IO endpoint, over WebSocket from the start, with the page's query
 * string (a `?token=` goes in the handshake's query, where the server reads it as from `io(url?token=…)`).
 */
export function engineIoUrl(search = passedOn()) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${ENGINE_IO_PATH}${search.replace(/^\?/, "&")}`;
}

/**
 * The WebSocket | SSE | Socket.IO switch and the note under it. `render()` shows which one the page uses
 * and why another is off; a click calls `onChoose(id)`.
 */
export class TransportSwitch {
  constructor(group, note, onChoose) {
    this.note = note;
    this.inputs = new Map();
    for (const { id, label, title } of TRANSPORTS) {
      const input = h("input", { type: "radio", name: "transport", value: id, "data-testid": `transport-${id}` });
      input.addEventListener("change", () => input.checked && onChoose(id));
      this.inputs.set(id, input);
      group.append(h("label", { class: "transport-option", title }, input, h("span", {}, label)));
    }
  }

  /** Check `shown`; `off` maps a transport to why it cannot be used here (its radio is disabled). */
  render(shown, { off = {}, note = null }) {
    for (const [id, input] of this.inputs) {
      input.checked = id === shown;
      input.disabled = id in off;
      input.parentElement.title = off[id] ?? TRANSPORTS.find((t) => t.id === id).title ?? "";
    }
    this.note.hidden = note === null;
    if (note !== null && this.note.textContent !== note) this.note.textContent = note;
  }
}
