// The configured streams as the server reports them (GET /api/streams): loading, the picker,
// the facts line under it, and the WebSocket URL of a stream as seen from this page.

import { h } from "./dom.js";
import { formatInterval, formatNumber } from "./format.js";

/** Fetch the stream list; throws with the HTTP status when the server answers with an error. */
export async function fetchStreams() {
  const response = await fetch("/api/streams", { cache: "no-store" });
  if (!response.ok) throw new Error(`GET /api/streams answered HTTP ${response.status}`);
  return response.json();
}

/** The stream served at the page's own path (the server serves this page at every stream path), else the first. */
export function streamForPath(streams, pathname) {
  return streams.find((stream) => stream.path === pathname) ?? streams[0];
}

/** ws: or wss: URL of a stream path on the host that served this page (works behind proxies and on a LAN). */
export function streamUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

/** Fill the <select> with one option per stream (value = name), keeping `selectedName` selected. */
export function renderPicker(select, streams, selectedName) {
  select.replaceChildren(
    ...streams.map((stream) =>
      h("option", { value: stream.name, selected: stream.name === selectedName }, `${stream.name} (${stream.path})`),
    ),
  );
  select.value = selectedName;
}

/** The settings that are switched on in a stream's `faults` object: [[name, value], ...]. */
export function enabledFaults(faults) {
  if (faults === null || typeof faults !== "object") return [];
  return Object.entries(faults).filter(([, value]) => isEnabled(value));
}

function isEnabled(value) {
  if (Array.isArray(value)) return value.length > 0;
  if (value !== null && typeof value === "object") return Object.values(value).some(isEnabled);
  return Boolean(value); // false, 0, "" and null mean "off"
}

/** The facts line for one stream; fields the server does not report are left out. */
export function renderFacts(container, stream) {
  const facts = [];
  const fact = (testId, text, extra = {}) => facts.push(h("span", { class: "fact", "data-testid": testId, ...extra }, text));
  if (stream.source) fact("fact-source", stream.source);
  if (Number.isFinite(stream.interval_ms)) fact("fact-interval", formatInterval(stream.interval_ms));
  if (stream.timeline) fact("fact-timeline", `${stream.timeline} timeline`);
  if (Number.isFinite(stream.clients)) fact("fact-clients", plural(stream.clients, "client"));
  if (Number.isFinite(stream.frames_sent)) fact("fact-frames-sent", `${plural(stream.frames_sent, "frame")} sent`);
  if (stream.paused === true) fact("fact-paused", "paused", { class: "fact badge badge-paused" });
  const faults = enabledFaults(stream.faults);
  if (faults.length > 0) {
    const detail = faults.map(([name, value]) => `${name}: ${JSON.stringify(value)}`).join(", ");
    fact("fact-faults", `faults on (${detail})`, { class: "fact badge badge-faults" });
  }
  container.replaceChildren(...facts);
}

function plural(count, noun) {
  return `${formatNumber(count)} ${noun}${count === 1 ? "" : "s"}`;
}
