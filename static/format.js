// Display formatting shared by the views: numbers with thousands separators, percentages, sizes, clock times.

const integerFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const decimalFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
const changeFormat = new Intl.NumberFormat(undefined, {
  style: "percent",
  maximumFractionDigits: 1,
  signDisplay: "exceptZero",
});
const rateFormat = new Intl.NumberFormat(undefined, { maximumSignificantDigits: 2 });

/** 1234567 -> "1,234,567" in the reader's locale. */
export function formatNumber(value) {
  return Number.isInteger(value) ? integerFormat.format(value) : decimalFormat.format(value);
}

/** Relative change from `before` to `after` as {text, direction}; direction is "up", "down" or "flat". */
export function formatChange(after, before) {
  if (before === 0) return { text: "n/a", direction: "flat" };
  const ratio = (after - before) / Math.abs(before);
  const direction = ratio > 0 ? "up" : ratio < 0 ? "down" : "flat";
  return { text: changeFormat.format(ratio), direction };
}

/** Frames per second with two significant digits: 0.33, 9.8, 100. */
export function formatRate(perSecond) {
  return rateFormat.format(perSecond);
}

/** Byte count as B / KB / MB. */
export function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** Local wall-clock time with milliseconds: "14:03:27.042". */
export function formatClock(date) {
  const pad = (n, width = 2) => String(n).padStart(width, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

/** A stream's push interval for people: "every 3 s", "every 100 ms". */
export function formatInterval(ms) {
  return ms >= 1000 && ms % 100 === 0 ? `every ${ms / 1000} s` : `every ${ms} ms`;
}
