// One WebSocket or EventSource kept open on the user's behalf: visible state, automatic reconnect
// with capped exponential backoff and jitter, and no reconnect after the user chose to disconnect.
// (Socket.IO, on the same ReconnectingConnection, is in socketio.js.)

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

/** "1001 server shutting down", or the code's standard name when the peer gave no reason; an event stream has no code. */
export function describeClose({ code, reason }) {
  if (code === null) return reason;
  return `${code} ${reason || CLOSE_CODE_NAMES[code] || "closed"}`;
}

/**
 * How long to wait before reconnect attempt `attempt` (0, 1, …): "equal jitter", between half and all of
 * the capped exponential delay, so clients dropped together by a restart do not all come back in the same instant.
 */
function backoffDelay(attempt) {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_FIRST_MS * 2 ** attempt);
  return ceiling / 2 + (Math.random() * ceiling) / 2;
}

/** One pending reconnect: when it fires (`at`, epoch ms, null when none is pending). */
class RetryTimer {
  constructor() {
    this.at = null;
    this.timer = null;
  }

  start(delayMs, callback) {
    this.at = Date.now() + delayMs;
    this.timer = setTimeout(() => {
      this.at = null;
      this.timer = null;
      callback();
    }, delayMs);
  }

  cancel() {
    clearTimeout(this.timer);
    this.timer = null;
    this.at = null;
  }
}

/**
 * What the page's connections share, whatever the transport: `state` ("connecting" | "open" | "closed")
 * with a "state" event after every change of `state`, `wanted` or `retryAt`; `wanted`, false once the user
 * pressed Disconnect (never reconnect then); reconnect attempts with backoff; `lastClose`. A transport's
 * class opens its connection in `openTransport()` and says in `hasTransport()` whether one is still there
 * (open, or closing).
 */
export class ReconnectingConnection extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.state = "closed";
    this.wanted = false;
    this.lastClose = null; // {code, reason, beforeOpen, ...} of the latest close, null while open
    this.attempt = 0; // reconnect attempts since the last successful open
    this.retry = new RetryTimer();
  }

  /** Epoch ms of the next attempt while this class waits to reconnect, else null. */
  get retryAt() {
    return this.retry.at;
  }

  /** Open now and keep reconnecting after unexpected closes. */
  connect() {
    this.wanted = true;
    this.attempt = 0;
    this.retry.cancel();
    if (this.hasTransport()) {
      this.setState(this.state); // still closing after a Disconnect: its close reconnects
    } else {
      this.openTransport();
    }
  }

  /** No more reconnecting (Disconnect, or the page moving to another stream). */
  stopRetrying() {
    this.wanted = false;
    this.retry.cancel();
  }

  scheduleRetry() {
    this.retry.start(backoffDelay(this.attempt), () => this.openTransport());
    this.attempt += 1;
  }

  setState(state) {
    this.state = state;
    this.dispatchEvent(new Event("state"));
  }
}

/**
 * A reconnecting WebSocket. Events: "open"; "close" (the socket closed: read `lastClose` and
 * `retryAt`); "message" (a MessageEvent, `data` is a string or an ArrayBuffer); and "state".
 */
export class Connection extends ReconnectingConnection {
  constructor(url) {
    super(url);
    this.client = "WebSocket"; // what the browser connects with, for messages
    this.canSend = true;
    this.socket = null;
  }

  hasTransport() {
    return this.socket !== null;
  }

  /** Close on purpose (1000) and stay closed until `connect()`. */
  disconnect() {
    this.stopRetrying();
    if (this.socket) {
      this.socket.close(1000, "client disconnected");
    } else {
      this.setState("closed");
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
    this.stopRetrying();
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      socket.close(1000, "client switched stream");
    }
  }

  openTransport() {
    const socket = new WebSocket(this.url);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    this.setState("connecting");
    let opened = false; // a close before the open is a failed handshake: refused, or no server
    socket.addEventListener("open", () => {
      if (this.socket !== socket) return;
      opened = true;
      this.attempt = 0;
      this.lastClose = null;
      this.dispatchEvent(new Event("open"));
      this.setState("open");
    });
    socket.addEventListener("message", (event) => {
      if (this.socket !== socket) return;
      this.dispatchEvent(new MessageEvent("message", { data: event.data }));
    });
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket) return; // a disposed socket finishing its close
      this.socket = null;
      this.lastClose = { code: event.code, reason: event.reason, beforeOpen: !opened };
      if (this.wanted) this.scheduleRetry();
      this.dispatchEvent(new Event("close"));
      this.setState("closed");
    });
  }
}

/**
 * A Server-Sent Events stream through the browser's EventSource, with the same state, events and verbs as
 * `Connection` (`send()` always returns false: events flow one way). EventSource reconnects by itself after
 * a drop, resuming with Last-Event-ID, so `attempt` counts those reconnects; only when the browser gives up
 * (an HTTP error such as 401 or 503) does this class retry with backoff. Frames of the stream's named event
 * (`eventName`, its `sse_event`) and of unnamed ones are "message"s, `binary` events arrive decoded as an
 * ArrayBuffer, and a `reset` event (the server no longer has what was missed) is a "reset" MessageEvent.
 */
export class EventSourceConnection extends ReconnectingConnection {
  // `lastClose` also says `browserRetries`; `attempt` counts the browser's own reconnects too; `retryAt` is
  // null while the browser retries: this class retries (with backoff) only after the browser gave up
  constructor(url, eventName = null) {
    super(url);
    this.eventName = eventName;
    this.client = "EventSource";
    this.canSend = false;
    this.source = null;
  }

  hasTransport() {
    return this.source !== null;
  }

  /** Close on purpose and stay closed until `connect()`. */
  disconnect() {
    this.stopRetrying();
    if (this.source) {
      this.source.close(); // EventSource fires nothing when closed by the page: say it here
      this.source = null;
      this.lastClose = { code: null, reason: "closed by the page", beforeOpen: false, browserRetries: false };
      this.dispatchEvent(new Event("close"));
    }
    this.setState("closed");
  }

  /** Nothing goes from the page to the server over Server-Sent Events. */
  send() {
    return false;
  }

  /** Close without emitting events (used when switching streams or transports). */
  dispose() {
    this.stopRetrying();
    this.source?.close();
    this.source = null;
  }

  openTransport() {
    const source = new EventSource(this.url);
    this.source = source;
    this.setState("connecting");
    let opened = false;
    const current = () => this.source === source;
    const deliver = (data) => this.dispatchEvent(new MessageEvent("message", { data }));
    source.addEventListener("open", () => {
      if (!current()) return;
      opened = true;
      this.attempt = 0;
      this.lastClose = null;
      this.dispatchEvent(new Event("open"));
      this.setState("open");
    });
    source.addEventListener("message", (event) => current() && deliver(event.data));
    if (this.eventName !== null) source.addEventListener(this.eventName, (event) => current() && deliver(event.data));
    source.addEventListener("binary", (event) => current() && deliver(base64Bytes(event.data)));
    source.addEventListener("reset", (event) => {
      if (current()) this.dispatchEvent(new MessageEvent("reset", { data: event.data }));
    });
    source.addEventListener("error", () => {
      if (!current()) return;
      // CONNECTING: the stream ended or an attempt failed, and the browser tries again by itself (after the
      // server's retry:). CLOSED: the browser gave up (an HTTP error, not an event stream): retry here.
      const browserRetries = source.readyState === EventSource.CONNECTING;
      const reason = opened ? "the event stream ended" : browserRetries ? "connection failed" : "refused";
      this.lastClose = { code: null, reason, beforeOpen: !opened, browserRetries };
      opened = false;
      if (browserRetries) {
        this.attempt += 1;
      } else {
        this.source = null;
        if (this.wanted) this.scheduleRetry();
      }
      this.dispatchEvent(new Event("close"));
      this.setState(browserRetries ? "connecting" : "closed");
    });
  }
}

/** The bytes of a base64 string (a `binary` event's data), as an ArrayBuffer like a WebSocket's binary frame. */
function base64Bytes(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0)).buffer;
}
