// A Socket.IO client small enough to read, so the demo page needs no bundle from npm or a CDN: Engine.IO v4
// and Socket.IO v5 over one WebSocket (no long-polling, no upgrade), joining one namespace. The wire format
// is in two pure functions (encodePacket, decodePacket); SocketIoConnection keeps the same state, events
// and verbs as `Connection` (connection.js), so the page treats every transport alike.

import { ReconnectingConnection } from "./connection.js";

// Engine.IO v4: the first character of every text frame. A Socket.IO packet travels as an Engine.IO message.
const ENGINE_OPEN = "0";
const ENGINE_CLOSE = "1";
const ENGINE_PING = "2";
const ENGINE_PONG = "3";
const ENGINE_MESSAGE = "4";

// Socket.IO v5 packet types.
export const CONNECT = 0;
export const DISCONNECT = 1;
export const EVENT = 2;
export const CONNECT_ERROR = 4;
export const BINARY_EVENT = 5;
export const BINARY_ACK = 6;

/** The event the send box emits: the one a stream's rules answer by default (`socket.emit('message', text)`). */
export const SEND_EVENT = "message";

/**
 * A Socket.IO packet as text, without Engine.IO's message prefix: type, then the namespace unless it is
 * "/" (`/replay,`), then the data as JSON when there is any: `2/replay,["message","hi"]`.
 */
export function encodePacket({ type, namespace = "/", data }) {
  const ns = namespace === "/" ? "" : `${namespace},`;
  return `${type}${ns}${data === undefined ? "" : JSON.stringify(data)}`;
}

/**
 * A Socket.IO packet from its text: {type, attachments, namespace, id, data}. A binary event
 * (`51-/ns,["ev",{"_placeholder":true,"num":0}]`) says how many binary frames follow with its
 * attachments; `id` is an ack id (null when the sender waits for none); `data` is undefined when absent.
 */
export function decodePacket(text) {
  const type = Number(text[0]);
  let rest = text.slice(1);
  let attachments = 0;
  if (type === BINARY_EVENT || type === BINARY_ACK) {
    const dash = rest.indexOf("-");
    attachments = Number(rest.slice(0, dash));
    rest = rest.slice(dash + 1);
  }
  let namespace = "/";
  if (rest.startsWith("/")) {
    const comma = rest.indexOf(",");
    namespace = comma === -1 ? rest : rest.slice(0, comma);
    rest = comma === -1 ? "" : rest.slice(comma + 1);
  }
  const digits = /^\d*/.exec(rest)[0];
  rest = rest.slice(digits.length);
  return {
    type,
    attachments,
    namespace,
    id: digits === "" ? null : Number(digits),
    data: rest === "" ? undefined : JSON.parse(rest),
  };
}

/** A decoded value with each `{_placeholder: true, num}` replaced by its binary attachment. */
export function withAttachments(value, buffers) {
  if (Array.isArray(value)) return value.map((item) => withAttachments(item, buffers));
  if (value === null || typeof value !== "object") return value;
  if (value._placeholder === true && Number.isInteger(value.num)) return buffers[value.num];
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, withAttachments(item, buffers)]));
}

/**
 * An event's arguments as the page shows a frame: one string as it is, one binary argument as an ArrayBuffer
 * (like a WebSocket's binary frame), anything else as JSON text (several arguments: a JSON array).
 */
export function frameOf(args) {
  if (args.length === 0) return "";
  const [value] = args;
  if (args.length === 1 && (typeof value === "string" || value instanceof ArrayBuffer)) return value;
  const shown = args.length === 1 ? value : args;
  return JSON.stringify(shown, (key, item) => (item instanceof ArrayBuffer ? `<${item.byteLength} bytes>` : item));
}

/**
 * A reconnecting Socket.IO client of one namespace, with `Connection`'s interface: "open" once the namespace
 * is joined, "close" (read `lastClose` and `retryAt`), "message" for every event the server emits (the
 * stream's frames, and the rules' replies, emitted as the event they answer), and "state". `send(text)`
 * emits a `message` event. After a dropped connection (`transport close`, `ping timeout`) it reconnects
 * with backoff; after a refusal (`connect_error`, whose reason is `lastClose.refused`) or the server's
 * disconnect it stays closed until `connect()`, as socket.io-client does.
 */
export class SocketIoConnection extends ReconnectingConnection {
  // `lastClose` also says `refused`: the server's connect_error
  /** `url` is what `io()` would be given (shown in the log); `engineUrl` the ws: URL of Engine.IO's endpoint. */
  constructor(url, { engineUrl, namespace }) {
    super(url);
    this.engineUrl = engineUrl;
    this.namespace = namespace;
    this.client = "Socket.IO client";
    this.canSend = true;
    this.socket = null;
    this.joined = false; // the namespace answered CONNECT on the current socket
    this.binary = null; // a binary event waiting for its attachments: {args, count, buffers}
    this.heartbeat = null; // fires when the server's ping is overdue
    this.pingDeadlineMs = 0; // the server's pingInterval + pingTimeout, from its open packet
  }

  hasTransport() {
    return this.socket !== null;
  }

  /** Leave the namespace and close (`io client disconnect`); stay closed until `connect()`. */
  disconnect() {
    this.stopRetrying();
    if (this.socket) {
      if (this.joined) this.#sendPacket({ type: DISCONNECT, namespace: this.namespace });
      this.#finish("io client disconnect", { retry: false });
    } else {
      this.setState("closed");
    }
  }

  /** Emit `text` as a `message` event; returns false (and sends nothing) unless the namespace is joined. */
  send(text) {
    if (this.state !== "open") return false;
    this.#sendPacket({ type: EVENT, namespace: this.namespace, data: [SEND_EVENT, text] });
    return true;
  }

  /** Close without emitting events (used when switching streams or transports). */
  dispose() {
    this.stopRetrying();
    clearTimeout(this.heartbeat);
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      socket.close(1000, "client switched stream");
    }
  }

  openTransport() {
    const socket = new WebSocket(this.engineUrl);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    this.joined = false;
    this.binary = null;
    this.setState("connecting");
    socket.addEventListener("message", (event) => {
      if (this.socket !== socket) return;
      if (typeof event.data === "string") this.#onText(event.data);
      else this.#onAttachment(event.data);
    });
    socket.addEventListener("close", () => {
      if (this.socket !== socket) return; // closed by this class, or disposed
      this.#finish(this.joined ? "transport close" : "transport error", { retry: true });
    });
  }

  #onText(text) {
    const kind = text[0];
    if (kind === ENGINE_OPEN) {
      const { pingInterval, pingTimeout } = JSON.parse(text.slice(1));
      this.pingDeadlineMs = pingInterval + pingTimeout;
      this.#expectPing();
      this.#sendPacket({ type: CONNECT, namespace: this.namespace }); // the token travels in the URL's query
    } else if (kind === ENGINE_PING) {
      this.socket.send(ENGINE_PONG);
      this.#expectPing();
    } else if (kind === ENGINE_CLOSE) {
      this.#finish("transport close", { retry: true });
    } else if (kind === ENGINE_MESSAGE) {
      this.#onPacket(decodePacket(text.slice(1)));
    }
  }

  #onPacket(packet) {
    if (packet.namespace !== this.namespace) return;
    if (packet.type === CONNECT) {
      this.joined = true;
      this.attempt = 0;
      this.lastClose = null;
      this.dispatchEvent(new Event("open"));
      this.setState("open");
    } else if (packet.type === CONNECT_ERROR) {
      const reason = packet.data?.message ?? String(packet.data);
      this.#finish(`connect_error: ${reason}`, { retry: false, refused: reason });
    } else if (packet.type === DISCONNECT) {
      this.#finish("io server disconnect", { retry: false });
    } else if (packet.type === EVENT && Array.isArray(packet.data)) {
      this.#deliver(packet.data);
    } else if (packet.type === BINARY_EVENT) {
      this.binary = { args: packet.data, count: packet.attachments, buffers: [] };
    } // acks: this client never asks for one
  }

  /** A binary frame: the next attachment of the binary event being received. */
  #onAttachment(buffer) {
    if (this.binary === null) return;
    this.binary.buffers.push(buffer);
    if (this.binary.buffers.length < this.binary.count) return;
    const { args, buffers } = this.binary;
    this.binary = null;
    this.#deliver(withAttachments(args, buffers));
  }

  /** An event `[name, ...args]`: its arguments are the frame, whatever its name. */
  #deliver([, ...args]) {
    this.dispatchEvent(new MessageEvent("message", { data: frameOf(args) }));
  }

  /** (Re)start the wait for the server's next ping: without one in time, the connection is gone. */
  #expectPing() {
    clearTimeout(this.heartbeat);
    const socket = this.socket;
    this.heartbeat = setTimeout(() => {
      if (this.socket === socket) this.#finish("ping timeout", { retry: true });
    }, this.pingDeadlineMs);
  }

  #sendPacket(packet) {
    this.socket.send(ENGINE_MESSAGE + encodePacket(packet));
  }

  /**
   * The connection ended: close the socket, say why, and reconnect with backoff if it was dropped
   * (`retry`) and still wanted. A refusal or a server's disconnect is final, as in socket.io-client.
   */
  #finish(reason, { retry, refused = null }) {
    const socket = this.socket;
    this.socket = null;
    clearTimeout(this.heartbeat);
    socket.close(1000);
    this.lastClose = { code: null, reason, beforeOpen: !this.joined, refused };
    this.joined = false;
    if (!retry) this.wanted = false;
    if (this.wanted) this.scheduleRetry();
    this.dispatchEvent(new Event("close"));
    this.setState("closed");
  }
}
