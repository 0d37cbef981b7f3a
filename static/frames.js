// Classifies a received WebSocket message as a JSON value, plain text or binary, with its size in bytes.

const BINARY_PREVIEW_BYTES = 32;

/**
 * Describe a message: {kind: "json"|"text"|"binary", value?, text, size}. `text` is what the
 * log shows: the frame itself for text frames, a hex preview for binary ones.
 */
export function decodeFrame(data) {
  if (typeof data !== "string") {
    const bytes = new Uint8Array(data);
    return { kind: "binary", text: hexPreview(bytes), size: bytes.byteLength };
  }
  const size = utf8Length(data);
  try {
    return { kind: "json", value: JSON.parse(data), text: data, size };
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    return { kind: "text", text: data, size };
  }
}

/** Bytes the string takes on the wire as UTF-8, without allocating an encoded copy. */
export function utf8Length(text) {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff) {
      bytes += 4; // a surrogate pair: one 4-byte character
      i += 1;
    } else bytes += 3;
  }
  return bytes;
}

function hexPreview(bytes) {
  const shown = Array.from(bytes.subarray(0, BINARY_PREVIEW_BYTES), (b) => b.toString(16).padStart(2, "0"));
  const more = bytes.byteLength > BINARY_PREVIEW_BYTES ? " …" : "";
  return `binary: ${shown.join(" ")}${more}`;
}
