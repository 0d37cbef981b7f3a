// The example messages of the selected path's rules (each rule's `example:`, from GET /api/endpoints),
// one button each under the send box: a click puts the message in the box, to edit or send as it is.

import { h } from "./dom.js";

/** A message on one line: ↵ for a line break, control pictures for other control characters (STOMP's ␀). */
export function exampleLabel(text) {
  return text
    .replace(/\r?\n/g, "↵")
    .replace(/[\u0000-\u001f]/g, (c) => String.fromCharCode(0x2400 + c.charCodeAt(0)));
}

/** The example buttons, and the exact text of the example in the send box (see `messageFor`). */
export class ExamplePicker {
  constructor(container, list, input) {
    this.container = container;
    this.list = list;
    this.input = input;
    this.examples = [];
    this.chosen = null; // {shown, exact}: the example last put in the box, as the box holds it and as written
    list.addEventListener("click", (event) => {
      const button = event.target.closest("[data-example]");
      if (button) this.#fill(this.examples[Number(button.dataset.example)]);
    });
  }

  /** Offer these example messages (none: the row is hidden); redrawn only when they changed. */
  show(examples) {
    if (JSON.stringify(examples) === JSON.stringify(this.examples)) return;
    this.examples = examples;
    this.chosen = null;
    this.container.hidden = examples.length === 0;
    this.list.replaceChildren(...examples.map((text, i) => h("li", {}, exampleButton(text, i))));
  }

  /**
   * What to send for the box's text: the example exactly as its rule wrote it while the box still
   * holds it unedited (a text box turns "\r\n" into "\n", which a STOMP rule may not match).
   */
  messageFor(text) {
    return this.chosen !== null && text === this.chosen.shown ? this.chosen.exact : text;
  }

  #fill(text) {
    this.input.value = text;
    this.chosen = { shown: this.input.value, exact: text };
    this.input.focus();
    this.input.setSelectionRange(this.input.value.length, this.input.value.length);
  }
}

function exampleButton(text, index) {
  const label = exampleLabel(text);
  return h(
    "button",
    { type: "button", class: "example", "data-testid": "example", "data-example": index, title: label },
    label,
  );
}
