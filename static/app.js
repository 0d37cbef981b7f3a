// Demo page entry point: loads the streams and rules endpoints, keeps one connection to the selected
// one over the chosen transport (WebSocket, or Server-Sent Events or Socket.IO for a stream) and feeds
// what arrives to the views (cards or JSON, log, counters). Frames are recorded as they arrive and drawn
// at most once per animation frame, so fast streams do not flood the DOM.

import { StatsCards, readStats } from "./cards.js";
import { Connection, EventSourceConnection, describeClose } from "./connection.js";
import { ExamplePicker } from "./examples.js";
import { formatBytes, formatClock, formatNumber, formatRate } from "./format.js";
import { decodeFrame, utf8Length } from "./frames.js";
import { renderJson } from "./json-view.js";
import { MessageLog, TrafficCounters } from "./log.js";
import { setupSnippet } from "./snippet.js";
import { SEND_EVENT, SocketIoConnection } from "./socketio.js";
import {
  fetchTargets,
  refusalHint,
  renderFacts,
  renderPicker,
  socketIoRefusalHint,
  socketUrl,
  targetForPath,
} from "./streams.js";
import { TransportSwitch, chosenTransport, engineIoUrl, eventsUrl, socketIoUrl, withTransport } from "./transports.js";

const LIST_REFRESH_MS = 5000;
const LIST_RETRY_MS = 2000;
const TICK_MS = 250; // status countdown, counters and the pause label
const RICH_JSON_CHARS = 100_000; // larger frames are shown uncoloured: thousands of spans stall phones
const WAITING_FOR_FRAMES = "Waiting for the first frame…";
const WAITING_FOR_ANSWERS = "Nothing yet: this endpoint sends what its rules answer. Send it a message it expects.";
const ONE_WAY = "Server-Sent Events are one-way: the page only listens (switch to WebSocket to send)";
const NO_NAMESPACE = "This stream is in no Socket.IO namespace";

const byId = (id) => document.getElementById(id);
const ui = {
  loadError: byId("load-error"),
  picker: byId("stream-picker"),
  facts: byId("stream-facts"),
  hint: byId("connection-hint"),
  status: byId("connection-status"),
  retry: byId("connection-retry"),
  toggle: byId("connection-toggle"),
  frameKind: byId("frame-kind"),
  frameTime: byId("frame-time"),
  frameEmpty: byId("frame-empty"),
  cards: byId("cards"),
  frameBody: byId("frame-body"),
  sendForm: byId("send-form"),
  sendInput: byId("send-input"),
  sendButton: byId("send-button"),
  pause: byId("log-pause"),
  clear: byId("log-clear"),
  framesIn: byId("count-in"),
  framesOut: byId("count-out"),
  bytesIn: byId("bytes-in"),
  rate: byId("rate"),
};

const cards = new StatsCards(ui.cards);
const log = new MessageLog(byId("log"));
const counters = new TrafficCounters();
const showSnippet = setupSnippet(byId("snippet-code"), byId("snippet-copy"));
const examples = new ExamplePicker(byId("examples"), byId("example-list"), ui.sendInput);
const transportSwitch = new TransportSwitch(byId("transport-switch"), byId("transport-note"), chooseTransport);
const SEND_PLACEHOLDER = ui.sendInput.placeholder;

let targets = [];
let selected = null; // the target, {id, name, path, stream, endpoint} (streams.js targetsFrom)
let connection = null; // a Connection, EventSourceConnection (connection.js) or SocketIoConnection (socketio.js)
let latest = null; // {frame, stats, time} shown in the frame panel
let frameDirty = false;
let drawQueued = false;

function select(target) {
  connection?.dispose();
  selected = target;
  latest = null;
  frameDirty = true;
  cards.reset();
  counters.reset();
  // The server serves this page at every stream and endpoint path, so the address bar names the target.
  if (location.pathname !== target.path) history.replaceState(null, "", target.path + location.search);
  const transport = transportFor(target);
  const how = howToReach(target, transport);
  showSnippet(how);
  renderTransport(target, transport);
  renderFacts(ui.facts, target);
  ui.hint.hidden = true;
  ui.frameEmpty.textContent = target.stream !== null ? WAITING_FOR_FRAMES : WAITING_FOR_ANSWERS;
  connection = openConnection(how);
  connection.addEventListener("open", onOpen);
  connection.addEventListener("close", onClose);
  connection.addEventListener("state", () => renderStatus());
  connection.addEventListener("message", (event) => onFrame(event.data));
  connection.addEventListener("reset", (event) => onReset(event.data));
  renderSendBox();
  examples.show(offeredExamples(target));
  log.add("event", `connecting to ${connection.url}`);
  connection.connect();
  queueDraw();
}

/**
 * The transport the page uses for a target: the chosen one for a stream (Socket.IO only where the stream has
 * a namespace); rules endpoints speak WebSocket only.
 */
function transportFor(target) {
  if (target.stream === null) return "websocket";
  const chosen = chosenTransport();
  return chosen === "socketio" && target.stream.socketio === null ? "websocket" : chosen;
}

/** How to reach a target over a transport: what the snippet shows and the connection is made from. */
function howToReach(target, transport) {
  if (transport === "sse") {
    return { transport, url: eventsUrl(target.path), event: target.stream.sse_event ?? null };
  }
  if (transport === "socketio") {
    const { namespace, event } = target.stream.socketio;
    return { transport, url: socketIoUrl(namespace), namespace, event };
  }
  // a path with rules: the snippet sends what they expect
  return { transport, url: socketUrl(target.path), message: target.endpoint?.examples[0] };
}

function openConnection({ transport, url, event, namespace }) {
  if (transport === "sse") return new EventSourceConnection(url, event);
  if (transport === "socketio") return new SocketIoConnection(url, { engineUrl: engineIoUrl(), namespace });
  return new Connection(url);
}

/** The user picked a transport: remember it in the address (a reload or a shared link keeps it) and reconnect. */
function chooseTransport(id) {
  history.replaceState(null, "", location.pathname + withTransport(location.search, id));
  select(selected);
}

function renderTransport(target, transport) {
  const off = {};
  let note = null;
  if (target.stream === null) {
    off.sse = off.socketio = "Rules endpoints speak WebSocket only";
    note = "Rules endpoints speak WebSocket only: SSE and Socket.IO serve the streams.";
  } else {
    if (target.stream.socketio === null) off.socketio = NO_NAMESPACE;
    if (transport === "sse") note = "Server-Sent Events are one-way: the page only listens, it cannot send.";
    if (transport === "socketio") {
      const { namespace, event } = target.stream.socketio;
      note = `Socket.IO namespace ${namespace}, event '${event}'; the send box emits '${SEND_EVENT}' events, ` +
        "and replies come back as the event they answer.";
    }
  }
  transportSwitch.render(transport, { off, note });
}

/** The send box works only where messages can go to the server (not over one-way Server-Sent Events). */
function renderSendBox() {
  const { canSend } = connection;
  ui.sendInput.disabled = !canSend;
  ui.sendButton.disabled = !canSend;
  ui.sendInput.placeholder = canSend ? SEND_PLACEHOLDER : ONE_WAY;
}

/** Rule examples to offer under the send box: none where nothing can be sent. */
function offeredExamples(target) {
  return connection.canSend ? target.endpoint?.examples ?? [] : [];
}

function onOpen() {
  ui.hint.hidden = true;
  log.add("event", `open: ${connection.url}`);
  refreshTargets(); // the client count just changed
  queueDraw();
}

function onClose() {
  const { lastClose, retryAt } = connection;
  let retry = retryAt ? `; retrying in ${((retryAt - Date.now()) / 1000).toFixed(1)} s` : "";
  if (lastClose.browserRetries) retry = "; EventSource reconnects by itself";
  log.add("event", `closed: ${describeClose(lastClose)}${retry}`);
  const hint = refusalHintFor(lastClose);
  ui.hint.hidden = hint === null;
  if (hint !== null) setText(ui.hint, hint);
  queueDraw();
}

/** Why a connection that never opened was refused, as far as the page can tell; null when it cannot. */
function refusalHintFor({ beforeOpen, refused }) {
  if (!beforeOpen) return null;
  // Socket.IO's connect_error says why; a transport error before it is no refusal (auth is checked on joining).
  if (connection instanceof SocketIoConnection) return refused ? socketIoRefusalHint(selected, refused) : null;
  // The browser hides a refused handshake's HTTP status and reason; say what it probably was.
  return refusalHint(selected, location.search, connection.client);
}

function onFrame(data) {
  const frame = decodeFrame(data);
  counters.received(frame.size);
  log.add("in", frame.text, frame.size);
  if (frame.kind === "json") {
    const stats = readStats(frame.value);
    if (stats) cards.push(stats);
    latest = { frame, stats, time: new Date() };
    frameDirty = true;
  } else if (latest?.frame.kind !== "json") {
    // Text and binary frames (echo replies, say) only take the panel until JSON arrives; the log has them all.
    latest = { frame, stats: null, time: new Date() };
    frameDirty = true;
  }
  queueDraw();
}

/** The server no longer has what this client missed (sse.md#resume): say so, and start the cards over. */
function onReset(data) {
  log.add("event", `reset: the frames missed while away are gone, the view starts over ${data}`);
  cards.reset();
  latest = null;
  frameDirty = true;
  queueDraw();
}

function queueDraw() {
  if (drawQueued) return;
  drawQueued = true;
  requestAnimationFrame(() => {
    drawQueued = false;
    log.render();
    if (frameDirty) drawFrame();
    frameDirty = false;
  });
}

function drawFrame() {
  ui.frameEmpty.hidden = latest !== null;
  ui.cards.hidden = !latest?.stats;
  ui.frameBody.hidden = latest === null || latest.stats !== null;
  if (latest === null) {
    ui.frameKind.textContent = "";
    ui.frameTime.textContent = "";
    return;
  }
  const { frame, stats, time } = latest;
  ui.frameTime.textContent = formatClock(time);
  ui.frameTime.dateTime = time.toISOString();
  if (stats) {
    cards.render();
    ui.frameKind.textContent = `stats · ${stats.length} ${stats.length === 1 ? "category" : "categories"}`;
  } else if (frame.kind === "json") {
    const rich = frame.text.length <= RICH_JSON_CHARS;
    ui.frameBody.replaceChildren(rich ? renderJson(frame.value) : JSON.stringify(frame.value, null, 2));
    ui.frameKind.textContent = `JSON · ${formatBytes(frame.size)}`;
  } else {
    ui.frameBody.textContent = frame.text;
    ui.frameKind.textContent = `${frame.kind} · ${formatBytes(frame.size)}`;
  }
}

function renderStatus() {
  const { state, lastClose, retryAt, attempt, wanted } = connection;
  let text = state;
  if (state === "connecting" && attempt > 0) text = `reconnecting (attempt ${attempt})`;
  if (state === "closed" && lastClose) text = `closed · ${describeClose(lastClose)}`;
  ui.status.dataset.state = state;
  setText(ui.status, text);
  // The countdown lives outside the live region so screen readers are not told every tick.
  let retry = retryAt ? `retrying in ${Math.max(0, (retryAt - Date.now()) / 1000).toFixed(1)} s` : "";
  if (state === "connecting" && lastClose?.browserRetries) retry = "EventSource reconnects by itself";
  setText(ui.retry, retry);
  setText(ui.toggle, wanted ? "Disconnect" : "Connect");
  const title = `${selected.name} (${state}) · Mock WebSocket push server`;
  if (document.title !== title) document.title = title;
}

function renderCounters() {
  setText(ui.framesIn, formatNumber(counters.framesIn));
  setText(ui.framesOut, formatNumber(counters.framesOut));
  setText(ui.bytesIn, formatBytes(counters.bytesIn));
  setText(ui.rate, formatRate(counters.rate()));
  const missed = log.missedWhilePaused;
  setText(ui.pause, log.paused ? `Resume${missed ? ` (${formatNumber(missed)} new)` : ""}` : "Pause");
}

/** Replace an element's text only when it changed (the tick runs four times a second). */
function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

function sendFromInput(event) {
  event.preventDefault();
  const text = examples.messageFor(ui.sendInput.value);
  if (text === "") return;
  if (connection.send(text)) {
    log.add("out", text, utf8Length(text));
    counters.sent();
    ui.sendInput.value = "";
  } else {
    // Kept in the box, to send again once the status says open.
    log.add("event", `not sent, the connection is ${connection.state}: ${text}`);
  }
  renderCounters();
  queueDraw();
}

async function refreshTargets() {
  let fresh;
  try {
    fresh = await fetchTargets();
  } catch (error) {
    return; // the server is restarting or gone; the connection status already says so
  }
  const listed = (list) => list.map((t) => `${t.id} ${t.path}`).join("\n");
  const listChanged = listed(fresh) !== listed(targets);
  targets = fresh;
  if (selected.stream?.params) targetForPath(targets, selected.path); // a value nobody is served yet stays listed
  const current = targets.find((t) => t.id === selected.id);
  if (listChanged) renderPicker(ui.picker, targets, selected.id);
  if (current) {
    selected = current; // the same stream or endpoint, with fresh counters and rules
    renderFacts(ui.facts, current);
    examples.show(offeredExamples(current));
  }
}

async function loadTargets() {
  for (;;) {
    try {
      const list = await fetchTargets();
      ui.loadError.hidden = true;
      return list;
    } catch (error) {
      ui.loadError.hidden = false;
      ui.loadError.textContent = `Could not load the stream list (${error.message}); retrying…`;
      await new Promise((resolve) => setTimeout(resolve, LIST_RETRY_MS));
    }
  }
}

async function start() {
  ui.picker.addEventListener("change", () => {
    const target = targets.find((t) => t.id === ui.picker.value);
    if (target) select(target);
  });
  ui.toggle.addEventListener("click", () => (connection.wanted ? connection.disconnect() : connection.connect()));
  ui.sendForm.addEventListener("submit", sendFromInput);
  ui.sendInput.addEventListener("keydown", (event) => {
    // Enter sends, as in a one-line box; Shift+Enter starts a new line (a STOMP frame has several).
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      ui.sendForm.requestSubmit();
    }
  });
  ui.pause.addEventListener("click", () => {
    log.setPaused(!log.paused);
    ui.pause.setAttribute("aria-pressed", String(log.paused));
    renderCounters();
  });
  ui.clear.addEventListener("click", () => log.clear());

  targets = await loadTargets();
  if (targets.length === 0) {
    ui.loadError.hidden = false;
    ui.loadError.textContent = "The server has no streams or endpoints to connect to.";
    return;
  }
  const initial = targetForPath(targets, location.pathname);
  renderPicker(ui.picker, targets, initial.id);
  select(initial);
  setInterval(refreshTargets, LIST_REFRESH_MS);
  setInterval(() => {
    renderStatus();
    renderCounters();
  }, TICK_MS);
}

start();
