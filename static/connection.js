// One WebSocket kept open on the user's behalf: visible state, automatic reconnect with capped
// exponential backoff and jitter, and no reconnect after the user chose to disconnect.

const BACKOFF_FIRST_MS = 500;
const BACKOFF_CAP_MS = 10_000;

/** Names for close codes that usually arrive without a reason (RFC 6455 section 7.4.1). */
const CLOSE_CODE_NAMES = {
  1000: "normal closure",
  1001: "going away",
  1002: "protocol error",
  1003: "unsupported data",
  1005: "no status code",
  1006: "connection lost",
  1007: "invalid data",
  1008: "policy violation",
  1009: "message too big",
  1011: "server error",
  1012: "service restart",
  1013: "try again later",
};

/** "1001 server shutting down", or the code's standard name when the peer gave no reason. */
export function describeClose({ code, reason }) {
  return `${code} ${reason || CLOSE_CODE_NAMES[code] || "closed"}`;
}

/**
 * A reconnecting WebSocket. Events: "open"; "close" (the socket closed: read `lastClose` and
 * `retryAt`); "message" (a MessageEvent, `data` is a string or an ArrayBuffer); and "state" after
 * every change of `state`, `wanted` or `retryAt`.
 */
export class Connection extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.state = "closed"; // "connecting" | "open" | "closed"
    this.wanted = false; // false once the user pressed Disconnect: never reconnect then
    this.lastClose = null; // {code, reason, beforeOpen} of the latest close, null while open
    this.retryAt = null; // epoch ms of the next attempt while waiting to reconnect
    this.attempt = 0; // reconnect attempts since the last successful open
    this.socket = null;
    this.retryTimer = null;
  }

  /** Open now and keep reconnecting after unexpected closes. */
  connect() {
    this.wanted = true;
    this.attempt = 0;
    this.#cancelRetry();
    if (this.socket) {
      this.#setState(this.state); // still closing after a Disconnect: its close event reconnects
    } else {
      this.#open();
    }
  }

  /** Close on purpose (1000) and stay closed until `connect()`. */
  disconnect() {
    this.wanted = false;
    this.#cancelRetry();
    if (this.socket) {
      this.socket.close(1000, "client disconnected");
    } else {
      this.#setState("closed");
    }
  }

  /** Send a text frame; returns false (and sends nothing) unless the socket is open. */
  send(text) {
    if (this.state !== "open") return false;
    this.socket.send(text);
    return true;
  }

  /** Drop the socket without emitting events (used when switching streams). */
  dispose() {
    this.wanted = false;
    this.#cancelRetry();
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      socket.close(1000, "client switched stream");
    }
  }

  #open() {
    const socket = new WebSocket(this.url);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    this.#setState("connecting");
    let opened = false; // a close before the open is a failed handshake: refused, or no server
    socket.addEventListener("open", () => {
      if (this.socket !== socket) return;
      opened = true;
      this.attempt = 0;
      this.lastClose = null;
      this.dispatchEvent(new Event("open"));
      this.#setState("open");
    });
    socket.addEventListener("message", (event) => {
      if (this.socket !== socket) return;
      this.dispatchEvent(new MessageEvent("message", { data: event.data }));
    });
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket) return; // a disposed socket finishing its close
      this.socket = null;
      this.lastClose = { code: event.code, reason: event.reason, beforeOpen: !opened };
      if (this.wanted) this.#scheduleRetry();
      this.dispatchEvent(new Event("close"));
      this.#setState("closed");
    });
  }

  #scheduleRetry() {
    // "Equal jitter": wait between half and all of the capped exponential delay, so clients
    // dropped together by a restart do not all come back in the same instant.
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_FIRST_MS * 2 ** this.attempt);
    const delay = ceiling / 2 + (Math.random() * ceiling) / 2;
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    this.retryTimer = setTimeout(() => {
      this.retryAt = null;
      this.retryTimer = null;
      this.#open();
    }, delay);
  }

  #cancelRetry() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.retryAt = null;
  }

  #setState(state) {
    this.state = state;
    this.dispatchEvent(new Event("state"));
  }
}
