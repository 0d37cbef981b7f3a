// Stats frames, {face: {name, toadyValue, yesterdayValue}, car: {...}, ...}, shown as one card per
// category: today's value, yesterday's, the change in percent and a sparkline of the last 60 frames.

import { h, svg } from "./dom.js";
import { formatChange, formatNumber } from "./format.js";

const SPARKLINE_POINTS = 60;

// The upstream data really spells it "toadyValue"; "todayValue" is accepted too for fixed feeds.
const TODAY_KEYS = ["toadyValue", "todayValue"];

/**
 * The categories of a stats-shaped frame as [{key, name, today, yesterday}], or null when the
 * value is anything else (then the page shows it as JSON).
 */
export function readStats(value) {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return null;
  const categories = [];
  for (const [key, item] of Object.entries(value)) {
    if (item === null || typeof item !== "object") return null;
    const todayKey = TODAY_KEYS.find((k) => k in item);
    if (!("name" in item) || todayKey === undefined) return null;
    const today = toNumber(item[todayKey]);
    const yesterday = toNumber(item.yesterdayValue);
    if (today === null || yesterday === null) return null;
    categories.push({ key, name: String(item.name), today, yesterday });
  }
  return categories.length > 0 ? categories : null;
}

function toNumber(raw) {
  if (typeof raw === "number") return Number.isFinite(raw) ? raw : null;
  if (typeof raw === "string" && raw.trim() !== "" && Number.isFinite(Number(raw))) return Number(raw);
  return null;
}

/** The card grid: records every stats frame, redraws on `render()`. */
export class StatsCards {
  constructor(container) {
    this.container = container;
    this.cards = new Map(); // key -> {history, latest, elements}
  }

  /** Record one frame's categories (cheap; call for every frame). */
  push(categories) {
    for (const category of categories) {
      let card = this.cards.get(category.key);
      if (!card) {
        card = { history: [], latest: null, elements: buildCard(category.key) };
        this.cards.set(category.key, card);
        this.container.append(card.elements.root);
      }
      card.latest = category;
      card.history.push(category.today);
      if (card.history.length > SPARKLINE_POINTS) card.history.shift();
    }
  }

  /** Bring every card's text and sparkline up to date with the latest recorded frame. */
  render() {
    for (const card of this.cards.values()) renderCard(card);
  }

  /** Forget all categories and their history (a different stream was selected). */
  reset() {
    this.cards.clear();
    this.container.replaceChildren();
  }
}

function buildCard(key) {
  const elements = {
    name: h("h3", { class: "card-name", "data-testid": "card-name" }),
    today: h("p", { class: "card-today", "data-testid": "card-today" }),
    change: h("span", { class: "card-change", "data-testid": "card-change" }),
    yesterday: h("span", { "data-testid": "card-yesterday" }),
    line: svg("polyline", { class: "sparkline-line", "data-testid": "sparkline-line" }),
    area: svg("polygon", { class: "sparkline-area" }),
    range: svg("title"),
  };
  const sparkline = svg("svg", {
    class: "sparkline",
    "data-testid": "sparkline",
    viewBox: "0 0 100 30",
    preserveAspectRatio: "none",
    role: "img",
  });
  sparkline.append(elements.range, elements.area, elements.line);
  elements.root = h(
    "article",
    { class: "card", "data-testid": "card", "data-key": key },
    h("header", { class: "card-head" }, elements.name, h("span", { class: "card-key" }, key)),
    elements.today,
    h("p", { class: "card-compare" }, elements.change, h("span", { class: "card-yesterday" }, "yesterday ", elements.yesterday)),
    sparkline,
  );
  return elements;
}

function renderCard({ latest, history, elements }) {
  const change = formatChange(latest.today, latest.yesterday);
  const arrow = { up: "▲", down: "▼", flat: "•" }[change.direction];
  elements.name.textContent = latest.name;
  elements.today.textContent = formatNumber(latest.today);
  elements.yesterday.textContent = formatNumber(latest.yesterday);
  elements.change.textContent = `${arrow} ${change.text}`;
  elements.change.dataset.direction = change.direction;
  const points = sparklinePoints(history);
  elements.line.setAttribute("points", points);
  elements.area.setAttribute("points", `0,30 ${points} 100,30`);
  const low = formatNumber(Math.min(...history));
  const high = formatNumber(Math.max(...history));
  elements.range.textContent = `today's value over the last ${history.length} frames: ${low} to ${high}`;
}

/**
 * Polyline points in a 100x30 box, oldest at the left edge and newest at the right, scaled
 * between the series' own low and high; a flat series (or a single value) is drawn mid-height.
 */
function sparklinePoints(values) {
  if (values.length === 1) return "0,15 100,15";
  const low = Math.min(...values);
  const span = Math.max(...values) - low;
  const step = 100 / (values.length - 1);
  return values
    .map((value, i) => {
      const y = span === 0 ? 15 : 28 - ((value - low) / span) * 26;
      return `${(i * step).toFixed(2)},${y.toFixed(2)}`;
    })
    .join(" ");
}
