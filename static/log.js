// The message log (last 200 messages in and out, newest first, with pause and clear) and the
// traffic counters (totals and frames per second).

import { h } from "./dom.js";
import { formatBytes, formatClock } from "./format.js";

const LOG_LIMIT = 200;
const PREVIEW_CHARS = 2000; // a log line is a preview; the frame panel shows the whole frame
const RATE_WINDOW_MS = 10_000;

const DIRECTION_LABELS = { in: "↓ in", out: "↑ out", event: "• event" };

/** Log entries are queued by `add()` and drawn by `render()`, so bursts cost one DOM update. */
export class MessageLog {
  constructor(list) {
    this.list = list;
    this.pending = []; // entries not drawn yet, oldest first, at most LOG_LIMIT
    this.paused = false;
    this.missedWhilePaused = 0;
    // A line shows one row of its message; clicking it shows the whole preview.
    list.addEventListener("click", (event) => {
      const entry = event.target.closest(".log-entry");
      if (entry) entry.setAttribute("aria-expanded", String(entry.getAttribute("aria-expanded") !== "true"));
    });
  }

  /** Queue one line. direction: "in" | "out" | "event"; size in bytes (null for events). */
  add(direction, text, size = null) {
    this.pending.push({ time: new Date(), direction, text, size });
    if (this.pending.length > LOG_LIMIT) this.pending.shift();
    if (this.paused) this.missedWhilePaused += 1;
  }

  /** Draw queued lines at the top, dropping the oldest beyond the limit; no-op while paused. */
  render() {
    if (this.paused || this.pending.length === 0) return;
    const fragment = document.createDocumentFragment();
    for (let i = this.pending.length - 1; i >= 0; i--) fragment.append(buildEntry(this.pending[i]));
    this.pending = [];
    this.list.prepend(fragment);
    while (this.list.childElementCount > LOG_LIMIT) this.list.lastElementChild.remove();
  }

  /** Freeze the view (messages keep arriving and are shown on resume). */
  setPaused(paused) {
    this.paused = paused;
    this.missedWhilePaused = 0;
    this.render();
  }

  /** Remove every line, drawn or queued. */
  clear() {
    this.pending = [];
    this.missedWhilePaused = 0;
    this.list.replaceChildren();
  }
}

function buildEntry({ time, direction, text, size }) {
  const preview = text.length > PREVIEW_CHARS ? `${text.slice(0, PREVIEW_CHARS)}…` : text;
  return h(
    "li",
    { class: "log-entry", "data-testid": "log-entry", "data-direction": direction, "aria-expanded": "false" },
    h("time", { class: "log-time", datetime: time.toISOString() }, formatClock(time)),
    h("span", { class: "log-direction" }, DIRECTION_LABELS[direction]),
    h("span", { class: "log-size" }, size === null ? "" : formatBytes(size)),
    h("span", { class: "log-body", "data-testid": "log-body" }, preview),
  );
}

/** Totals since the stream was selected and the receive rate over the last 10 seconds. */
export class TrafficCounters {
  constructor() {
    this.reset();
  }

  reset() {
    this.framesIn = 0;
    this.framesOut = 0;
    this.bytesIn = 0;
    this.arrivals = []; // receive times within the rate window, oldest first
    this.since = performance.now();
  }

  received(size) {
    this.framesIn += 1;
    this.bytesIn += size;
    this.arrivals.push(performance.now());
  }

  sent() {
    this.framesOut += 1;
  }

  /** Frames received per second, averaged over the window (or since reset, when that is shorter). */
  rate() {
    const now = performance.now();
    const firstInWindow = this.arrivals.findIndex((t) => t >= now - RATE_WINDOW_MS);
    this.arrivals = firstInWindow === -1 ? [] : this.arrivals.slice(firstInWindow);
    // At least one second, so the first frame after a reset does not read as a burst.
    const windowMs = Math.min(RATE_WINDOW_MS, Math.max(1000, now - this.since));
    return (this.arrivals.length * 1000) / windowMs;
  }
}
