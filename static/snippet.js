// The "use it from your code" panel: the exact client code for the selected stream or endpoint and
// transport (`new WebSocket(...)`, `new EventSource(...)`, `io(...)`), with a copy button that also
// works on plain-http LAN addresses (no Clipboard API there).

const FEEDBACK_MS = 1500;

/**
 * The snippet for one way of connecting: {transport: "websocket", url, message} (see `webSocketSnippet`),
 * {transport: "sse", url, event} or {transport: "socketio", url, event}.
 */
export function snippetFor({ transport, url, message, event }) {
  if (transport === "sse") return eventSourceSnippet(url, event);
  if (transport === "socketio") return socketIoSnippet(url, event);
  return webSocketSnippet(url, message);
}

/** JavaScript a front-end developer can paste to talk to the stream or endpoint at `url`, sending `message`. */
export function webSocketSnippet(url, message = "hello server!") {
  return [
    `const socket = new WebSocket(${quote(url)});`,
    "",
    "socket.addEventListener('open', () => {",
    `  socket.send(${quote(message)});`,
    "});",
    "",
    "socket.addEventListener('message', (event) => {",
    "  console.log('message from server', event.data);",
    "});",
  ].join("\n");
}

/**
 * Listening to a stream's Server-Sent Events at `url`: `onmessage` for unnamed events, addEventListener for a
 * stream whose events are named (its `sse_event`).
 */
export function eventSourceSnippet(url, event = null) {
  const [listen, end] = event === null
    ? ["events.onmessage = (event) => {", "};"]
    : [`events.addEventListener(${quote(event)}, (event) => {`, "});"];
  return [
    `const events = new EventSource(${quote(url)});`,
    "",
    "// EventSource reconnects by itself after a drop and resumes after event.lastEventId",
    listen,
    "  console.log('message from server', event.lastEventId, event.data);",
    end,
  ].join("\n");
}

/** Listening to a stream's Socket.IO event: `url` is the server and namespace (see transports.js socketIoUrl). */
export function socketIoSnippet(url, event) {
  return [
    "import { io } from 'socket.io-client';",
    "",
    `const socket = io(${quote(url)});`,
    "",
    `socket.on(${quote(event)}, (data) => {`,
    `  console.log(${quote(`${event} from server`)}, data);`,
    "});",
  ].join("\n");
}

/** A single-quoted JavaScript string literal: line breaks and other control characters escaped. */
function quote(text) {
  const escaped = JSON.stringify(text).slice(1, -1).replace(/\\"/g, '"').replace(/'/g, "\\'");
  return `'${escaped}'`;
}

/** Wire the panel; returns show({transport, url, message, event}) to display the snippet (see `snippetFor`). */
export function setupSnippet(code, button) {
  const label = button.textContent;
  let resetTimer = null;
  button.addEventListener("click", async () => {
    const copied = await copyText(code);
    button.textContent = copied ? "Copied" : "Press Ctrl+C";
    clearTimeout(resetTimer);
    resetTimer = setTimeout(() => (button.textContent = label), FEEDBACK_MS);
  });
  return (how) => {
    code.textContent = snippetFor(how);
  };
}

async function copyText(element) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(element.textContent);
      return true;
    } catch (error) {
      if (error.name !== "NotAllowedError") throw error; // denied: fall back to a selection copy
    }
  }
  // Plain http on a LAN address is not a secure context: select the text and use the legacy copy.
  const range = document.createRange();
  range.selectNodeContents(element);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
  return document.execCommand("copy");
}
