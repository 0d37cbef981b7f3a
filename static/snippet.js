// The "use it from your code" panel: the exact `new WebSocket(...)` snippet for the selected
// stream or endpoint, with a copy button that also works on plain-http LAN addresses (no Clipboard API there).

const FEEDBACK_MS = 1500;

/** JavaScript a front-end developer can paste to talk to the stream or endpoint at `url`, sending `message`. */
export function snippetFor(url, message = "hello server!") {
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

/** A single-quoted JavaScript string literal: line breaks and other control characters escaped. */
function quote(text) {
  const escaped = JSON.stringify(text).slice(1, -1).replace(/\\"/g, '"').replace(/'/g, "\\'");
  return `'${escaped}'`;
}

/** Wire the panel; returns show(url, message) to display the snippet for a stream or endpoint. */
export function setupSnippet(code, button) {
  const label = button.textContent;
  let resetTimer = null;
  button.addEventListener("click", async () => {
    const copied = await copyText(code);
    button.textContent = copied ? "Copied" : "Press Ctrl+C";
    clearTimeout(resetTimer);
    resetTimer = setTimeout(() => (button.textContent = label), FEEDBACK_MS);
  });
  return (url, message) => {
    code.textContent = snippetFor(url, message);
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
