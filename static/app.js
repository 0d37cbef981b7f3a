// Demo page entry point: loads the streams and rules endpoints, keeps one Connection to the selected
// one and feeds what arrives to the views (cards or JSON, log, counters). Frames are recorded as they
// arrive and drawn at most once per animation frame, so fast streams do not flood the DOM.

import { StatsCards, readStats } from "./cards.js";
import { Connection, describeClose } from "./connection.js";
import { ExamplePicker } from "./examples.js";
import { formatBytes, formatClock, formatNumber, formatRate } from "./format.js";
import { decodeFrame, utf8Length } from "./frames.js";
import { renderJson } from "./json-view.js";
import { MessageLog, TrafficCounters } from "./log.js";
import { setupSnippet } from "./snippet.js";
import { fetchTargets, refusalHint, renderFacts, renderPicker, socketUrl, targetForPath } from "./streams.js";

const LIST_REFRESH_MS = 5000;
const LIST_RETRY_MS = 2000;
const TICK_MS = 250; // status countdown, counters and the pause label
const RICH_JSON_CHARS = 100_000; // larger frames are shown uncoloured: thousands of spans stall phones
const WAITING_FOR_FRAMES = "Waiting for the first frame…";
const WAITING_FOR_ANSWERS = "Nothing yet: this endpoint sends what its rules answer. Send it a message it expects.";

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

let targets = [];
let selected = null; // the target, {id, name, path, stream, endpoint} (streams.js targetsFrom)
let connection = null;
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
  const url = socketUrl(target.path);
  showSnippet(url, target.endpoint?.examples[0]); // a path with rules: the snippet sends what they expect
  renderFacts(ui.facts, target);
  examples.show(target.endpoint?.examples ?? []);
  ui.hint.hidden = true;
  ui.frameEmpty.textContent = target.stream !== null ? WAITING_FOR_FRAMES : WAITING_FOR_ANSWERS;
  connection = new Connection(url);
  connection.addEventListener("open", onOpen);
  connection.addEventListener("close", onClose);
  connection.addEventListener("state", () => renderStatus());
  connection.addEventListener("message", (event) => onFrame(event.data));
  log.add("event", `connecting to ${url}`);
  connection.connect();
  queueDraw();
}

function onOpen() {
  ui.hint.hidden = true;
  log.add("event", `open: ${connection.url}`);
  refreshTargets(); // the client count just changed
  queueDraw();
}

function onClose() {
  const { lastClose, retryAt } = connection;
  const retry = retryAt ? `; retrying in ${((retryAt - Date.now()) / 1000).toFixed(1)} s` : "";
  log.add("event", `closed: ${describeClose(lastClose)}${retry}`);
  // The browser hides a refused handshake's HTTP status and reason; say what it probably was.
  const hint = lastClose.beforeOpen ? refusalHint(selected) : null;
  ui.hint.hidden = hint === null;
  if (hint !== null) setText(ui.hint, hint);
  queueDraw();
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
  setText(ui.retry, retryAt ? `retrying in ${Math.max(0, (retryAt - Date.now()) / 1000).toFixed(1)} s` : "");
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
  const current = targets.find((t) => t.id === selected.id);
  if (listChanged) renderPicker(ui.picker, targets, selected.id);
  if (current) {
    selected = current; // the same stream or endpoint, with fresh counters and rules
    renderFacts(ui.facts, current);
    examples.show(current.endpoint?.examples ?? []);
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
