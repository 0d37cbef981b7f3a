// What the page can connect to, as the server reports it (GET /api/streams and GET /api/endpoints):
// loading, the picker, the facts line under it, and the WebSocket URL of a path as seen from this page.

import { h } from "./dom.js";
import { formatInterval, formatNumber } from "./format.js";
import { passedOn } from "./transports.js";

/**
 * Fetch the streams and rules endpoints as the picker's targets (see `targetsFrom`); throws with the
 * HTTP status when the server answers with an error.
 */
export async function fetchTargets() {
  const [streams, endpoints] = await Promise.all([getJson("/api/streams"), getJson("/api/endpoints")]);
  return targetsFrom(streams, endpoints);
}

async function getJson(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) throw new Error(`GET ${path} answered HTTP ${response.status}`);
  return response.json();
}

const MAX_VALUE_TARGETS = 50; // the most values of one parameterized stream the picker lists

/**
 * Every stream with a path (one without is a topic only: it is reached by subscribing through an
 * endpoint), then every rules endpoint with no stream of its own, as {id, name, path, stream, endpoint}.
 * `id` is the picker's value: a stream's name, an endpoint's path (names never start with "/").
 * `endpoint` is the /api/endpoints entry for the path (its rules and examples), or null.
 *
 * A parameterized stream (/v1/marketdata/{symbol}) is one target per value: the values it serves now,
 * and every value its `enum`s allow; its `id` is the value's path. When it allows any value, or a
 * pattern, and serves none, its one target is `disabled`: its path is the route, which cannot be opened.
 */
export function targetsFrom(streams, endpoints) {
  const rulesAt = new Map(endpoints.map((endpoint) => [endpoint.path, endpoint]));
  const target = (id, path, stream, endpoint) => ({ id, name: stream?.name ?? path, path, stream, endpoint });
  const ofStream = (stream) => {
    const endpoint = rulesAt.get(stream.path) ?? null;
    if (!stream.params) return [target(stream.name, stream.path, stream, endpoint)];
    const paths = [...new Set([...Object.keys(stream.instances ?? {}), ...enumPaths(stream.path, stream.params)])];
    if (paths.length === 0) return [{ ...target(stream.name, stream.path, stream, endpoint), disabled: true }];
    return paths.slice(0, MAX_VALUE_TARGETS).map((path) => target(path, path, forValue(stream, path), endpoint));
  };
  return [
    ...streams.filter((stream) => typeof stream.path === "string").flatMap(ofStream),
    ...endpoints
      .filter((endpoint) => endpoint.stream === null)
      .map((endpoint) => target(endpoint.path, endpoint.path, null, endpoint)),
  ];
}

/** A parameterized stream as one value's target sees it: Socket.IO serves each value in its path's namespace. */
function forValue(stream, path) {
  return { ...stream, socketio: stream.socketio && { ...stream.socketio, namespace: path } };
}

/** Every path a route's `enum`s allow (/v1/marketdata/{symbol} with symbol: [BTC-USD, ...]), or [] if a segment is open. */
function enumPaths(route, params) {
  let paths = [""];
  for (const segment of route.split("/").slice(1)) {
    const name = paramName(segment);
    const values = name === null ? [segment] : params[name]?.enum;
    if (!values) return [];
    paths = paths.flatMap((path) => values.map((value) => `${path}/${value}`)).slice(0, MAX_VALUE_TARGETS);
  }
  return paths;
}

function paramName(segment) {
  const match = /^\{(\w+)\}$/.exec(segment);
  return match ? match[1] : null;
}

/** Whether `path` has the shape of a parameterized `route` (the server says whether it allows the values). */
function fitsRoute(route, path) {
  const want = route.split("/");
  const got = path.split("/");
  return want.length === got.length && want.every((segment, i) => (paramName(segment) ? got[i] !== "" : segment === got[i]));
}

/**
 * The target served at the page's own path (the server serves this page at each of them), else the first
 * that can be opened. A value of a parameterized stream that is not listed yet (/v1/marketdata/XRP-USD)
 * becomes a target of its own, added to `targets`.
 */
export function targetForPath(targets, pathname) {
  const listed = targets.find((target) => target.path === pathname && !target.disabled);
  if (listed) return listed;
  const route = targets.find((target) => target.stream?.params && fitsRoute(target.stream.path, pathname));
  if (route) {
    const value = { ...route, id: pathname, path: pathname, stream: forValue(route.stream, pathname), disabled: false };
    targets.splice(targets.indexOf(route), route.disabled ? 1 : 0, value);
    return value;
  }
  return targets.find((target) => !target.disabled) ?? targets[0];
}

/**
 * ws: or wss: URL of a path on the host that served this page (works behind proxies and on a LAN),
 * with this page's query string, so a page opened as /ws?token=abc connects with ?token=abc.
 */
export function socketUrl(path, search = passedOn()) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}${search}`;
}

/**
 * Fill the <select> with one option per target, keeping `selectedId` selected. Rules endpoints with no
 * stream of their own get a group of their own; without any, the list stays flat.
 */
export function renderPicker(select, targets, selectedId) {
  const option = (target) =>
    h("option", { value: target.id, selected: target.id === selectedId, disabled: Boolean(target.disabled) },
      pickerLabel(target));
  const streams = targets.filter((target) => target.stream !== null);
  const endpoints = targets.filter((target) => target.stream === null);
  if (endpoints.length === 0) {
    select.replaceChildren(...streams.map(option));
  } else {
    const groups = [["Streams", streams], ["Endpoints with rules", endpoints]].filter(([, list]) => list.length > 0);
    select.replaceChildren(...groups.map(([label, members]) => h("optgroup", { label }, ...members.map(option))));
  }
  select.value = selectedId;
}

/** What the picker says for a target: "stats (/)" for a stream, the path for an endpoint. */
function pickerLabel(target) {
  if (target.disabled) return `${target.name} (${target.path}): open this page at a value's path to watch it`;
  return target.stream !== null ? `${target.name} (${target.path})` : target.path;
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

/** The facts line for one target; fields the server does not report are left out. */
export function renderFacts(container, target) {
  const { stream, endpoint } = target;
  const facts = [];
  const fact = (testId, text, extra = {}) => facts.push(h("span", { class: "fact", "data-testid": testId, ...extra }, text));
  if (stream === null) fact("fact-source", "rules endpoint");
  if (stream?.source) fact("fact-source", stream.source);
  if (Number.isFinite(stream?.interval_ms)) fact("fact-interval", formatInterval(stream.interval_ms));
  if (stream?.timeline) fact("fact-timeline", `${stream.timeline} timeline`);
  if (endpoint?.rules > 0) fact("fact-rules", `answers by ${plural(endpoint.rules, "rule")}`);
  const clients = stream !== null ? stream.clients : endpoint.clients;
  if (Number.isFinite(clients)) fact("fact-clients", plural(clients, "client"));
  const topics = Object.entries(endpoint?.subscriptions ?? {});
  if (topics.length > 0) {
    const counts = topics.map(([name, count]) => `${name} ×${formatNumber(count)}`);
    fact("fact-topics", `subscribed here: ${counts.join(", ")}`);
  }
  if (Number.isFinite(stream?.frames_sent)) fact("fact-frames-sent", `${plural(stream.frames_sent, "frame")} sent`);
  if (stream?.paused === true) fact("fact-paused", "paused", { class: "fact badge badge-paused" });
  const faults = enabledFaults(stream?.faults);
  if (faults.length > 0) {
    const detail = faults.map(([name, value]) => `${name}: ${JSON.stringify(value)}`).join(", ");
    fact("fact-faults", `faults on (${detail})`, { class: "fact badge badge-faults" });
  }
  const auth = authOf(target);
  if (auth) fact("fact-auth", `needs a token: ${tokenCarrier(auth)}`, { class: "fact badge badge-auth" });
  container.replaceChildren(...facts);
}

/** Where a target's token goes ({query, header, scheme}, as the API reports it), or null when anyone may connect. */
export function authOf({ stream, endpoint }) {
  return stream?.auth ?? endpoint?.auth ?? null;
}

/** "?token=" or "Authorization: Bearer …". */
function tokenCarrier(auth) {
  return auth.query ? `?${auth.query}=` : `${auth.header}: ${auth.scheme ? `${auth.scheme} ` : ""}…`;
}

/**
 * Why a handshake that never opened was probably refused, for a target that needs a token; null for
 * one that does not (then the server is more likely down). A browser's WebSocket sees only a 1006
 * close, and its EventSource only an error, never the HTTP 401 and its reason, so this is worked out
 * from the API's `auth`. `client` names what the page connects with.
 */
export function refusalHint(target, search = location.search, client = "WebSocket") {
  const auth = authOf(target);
  if (!auth) return null;
  const { path } = target;
  if (!auth.query) {
    return `The server refuses a handshake without the header ${tokenCarrier(auth)} (HTTP 401), and a browser's ` +
      `${client} cannot send headers: connect to ${path} from your code.`;
  }
  if (!new URLSearchParams(search).get(auth.query)) {
    return `The server refused the handshake (HTTP 401, missing token): ${path} needs ?${auth.query}=. ` +
      `Open this page as ${path}?${auth.query}=… and the token is passed on to the ${client}.`;
  }
  return `The handshake failed: if the server did not accept this page's ?${auth.query}= (HTTP 401, token not ` +
    "accepted), use one of the tokens in its config; the browser's console shows the HTTP status.";
}

/**
 * What a Socket.IO connect_error (the server's `reason`) means for this page: the reason, and for a target
 * that needs a query token the page does not have, how to pass one on.
 */
export function socketIoRefusalHint(target, reason, search = location.search) {
  const hint = `The server refused to join the namespace: ${reason}.`;
  const auth = authOf(target);
  if (!auth?.query || new URLSearchParams(search).get(auth.query)) return hint;
  return `${hint} Open this page as ${target.path}?${auth.query}=… and the token is passed on to the Socket.IO ` +
    "handshake.";
}

function plural(count, noun) {
  return `${formatNumber(count)} ${noun}${count === 1 ? "" : "s"}`;
}
