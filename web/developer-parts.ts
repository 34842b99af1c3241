// What the Developer dialog's panels share: a secret shown once with its Copy button, a
// delete asked once more in its row, a time element.
import { dateText } from "./developer-text.ts";
import { busy, h } from "./page.ts";

let ids = 0;

export interface ShownOnce {
  /** What it is: "Your new API key “backup”". */
  title: string;
  /** The field's label: "API key". */
  label: string;
  value: string;
  /** What to do with it, after "Copy it now: you will not see it again." */
  use: string;
}

/**
 * Shows a secret the API answers once (an API key, a webhook's signing secret) in `target`:
 * a read-only field, Copy, and that it will not be shown again. "Done" (or closing the
 * dialog: `target` emptied) removes it from the page. The Copy button gets the focus.
 */
export function showOnce(target: HTMLElement, secret: ShownOnce) {
  const id = `secret-${++ids}`;
  // A textarea, so a phone shows the whole secret, wrapped, rather than a scrolled part of it.
  const field = h("textarea", {
    id,
    readOnly: true,
    value: secret.value,
    rows: 2,
    spellcheck: false,
    autocomplete: "off",
    class: "secret-value",
  });
  const copy = h("button", { type: "button", class: "primary" }, "Copy");
  const done = h("button", { type: "button", class: "quiet" }, "Done");
  const outcome = h("p", { class: "secret-outcome", role: "status" });
  const warning = h(
    "p",
    { class: "warning", id: `${id}-note` },
    h("strong", {}, "Copy it now: you will not see it again."),
    ` ${secret.use}`,
  );
  field.setAttribute("aria-describedby", warning.id);
  field.addEventListener("focus", () => field.select());
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(secret.value);
      outcome.textContent = "Copied to the clipboard.";
    } catch {
      field.focus(); // selected: Ctrl+C (or the phone's Copy) takes it
      outcome.textContent = "Copying was refused by the browser: the text is selected, copy it by hand.";
    }
  });
  done.addEventListener("click", () => {
    target.replaceChildren();
    target.dispatchEvent(new Event("dismissed"));
  });
  const box = h(
    "section",
    { class: "secret stack" },
    h("h4", { id: `${id}-title` }, secret.title),
    h("label", { htmlFor: id, class: "visually-hidden" }, secret.label),
    h("div", { class: "row secret-row" }, field, copy),
    warning,
    h("div", { class: "row secret-end" }, outcome, done),
  );
  box.setAttribute("aria-labelledby", `${id}-title`);
  target.replaceChildren(box);
  copy.focus();
}

export interface Confirmation {
  /** The question, with what follows: "Delete “backup”? Programs using it are refused within a minute." */
  question: string;
  /** The confirming button's label: "Delete key". */
  confirm: string;
  /** Busy label while it runs: "Deleting…". */
  working: string;
  /** Does it; throws to show the question again (the caller says why). */
  run: () => Promise<void>;
}

/**
 * A delete asked once more in the row: the row's actions give way to the question, the
 * confirming button (focused, the question its description) and Cancel (back as before).
 */
export function askInRow(row: HTMLElement, actions: HTMLElement, ask: Confirmation) {
  const id = `ask-${++ids}`;
  const yes = h("button", { type: "button", class: "danger confirm" }, ask.confirm);
  const no = h("button", { type: "button", class: "quiet" }, "Cancel");
  const prompt = h("div", { class: "ask" }, h("p", { id }, ask.question), h("div", { class: "row" }, yes, no));
  yes.setAttribute("aria-describedby", id);
  const back = () => {
    prompt.remove();
    actions.hidden = false;
  };
  no.addEventListener("click", () => {
    back();
    actions.querySelector("button")?.focus();
  });
  yes.addEventListener("click", async () => {
    busy(yes, ask.working);
    no.disabled = true;
    try {
      await ask.run();
    } catch {
      back();
    }
  });
  actions.hidden = true;
  row.append(prompt);
  yes.focus();
}

/** A <time> with the date as a person reads it. */
export const timeOf = (iso: string, text = dateText(iso)) => h("time", { dateTime: iso }, text);
