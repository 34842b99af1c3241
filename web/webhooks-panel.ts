// The Developer dialog's webhooks: the list (URL, events, when added), "Add webhook" with a
// URL and the events to send (the signing secret then shown once, with Copy), each one's
// recent deliveries (deliveries.ts), and Delete, asked once more in its row. A URL the
// gateway refuses (not http(s), a private address…) is said as the API words it.
import { deliveriesBox } from "./deliveries.ts";
import { createWebhook, deleteWebhook, listWebhooks, type Webhook, type WebhookEvent } from "./developer-api.ts";
import { developerPanel } from "./developer-panel.ts";
import { askInRow, timeOf } from "./developer-parts.ts";
import { EVENT_MEANINGS, EVENTS } from "./developer-text.ts";
import { $, h, show } from "./page.ts";

const form = $<HTMLFormElement>("webhook-form");
const urlInput = form.elements.namedItem("url") as HTMLInputElement;
const eventsField = $<HTMLFieldSetElement>("webhook-events");
const message = $("webhook-message");

// One checkbox per event the API has, checked: most programs want both.
eventsField.append(
  ...EVENTS.map((event) =>
    h(
      "label",
      { class: "check" },
      h("input", { type: "checkbox", name: "events", value: event, defaultChecked: true }),
      h("code", {}, event),
      h("span", { class: "hint" }, EVENT_MEANINGS[event]),
    ),
  ),
);

const chosenEvents = () =>
  [...eventsField.querySelectorAll<HTMLInputElement>("input:checked")].map((box) => box.value as WebhookEvent);

/** The URL and the events chosen; none chosen is said, and nothing is sent. */
function chosenWebhook() {
  const events = chosenEvents();
  if (events.length > 0) return { url: urlInput.value.trim(), events };
  show(message, { title: "Choose at least one event to send." }, "error");
  eventsField.querySelector("input")?.focus();
  return undefined;
}

const panel = developerPanel({
  subject: "webhook",
  form,
  input: urlInput,
  message,
  created: $("webhook-created"),
  list: $<HTMLUListElement>("webhook-list"),
  empty: $("webhooks-empty"),
  read: listWebhooks,
  row: webhookRow,
  request: chosenWebhook,
  make: createWebhook,
  making: "Adding…",
  shown: (webhook) => ({
    title: `The signing secret of ${webhook.url}`,
    label: "Signing secret",
    value: webhook.secret,
    use: "Your receiver checks each delivery's webhook-signature header with it (Standard Webhooks).",
  }),
});

/** Reads the list again; `quiet` keeps an earlier message (after an add or a delete). */
export const loadWebhooks = panel.load;
/** Forgets what the dialog showed: the secret shown once, messages, open deliveries. */
export const clearWebhooks = panel.clear;

function webhookRow(webhook: Webhook): HTMLLIElement {
  const toggle = h("button", { type: "button", class: "quiet" }, "Deliveries");
  const remove = h("button", { type: "button", class: "danger" }, "Delete");
  remove.setAttribute("aria-label", `Delete the webhook to ${webhook.url}`);
  const actions = h("div", { class: "dev-actions" }, toggle, remove);
  const events = webhook.events.flatMap((event, i) => [...(i ? [", "] : []), h("code", {}, event)]);
  const row = h(
    "li",
    { class: "dev-item" },
    h(
      "div",
      { class: "dev-text" },
      h("h4", { class: "dev-name dev-url" }, webhook.url),
      h("p", { class: "meta" }, ...events, " · added ", timeOf(webhook.createdAt)),
    ),
    actions,
  );
  row.append(deliveriesBox(webhook, toggle));
  remove.addEventListener("click", () =>
    askInRow(row, actions, {
      question: "Delete this webhook? Nothing more is sent to it, not even the tries still due.",
      confirm: "Delete webhook",
      working: "Deleting…",
      run: () =>
        panel.remove((token) => deleteWebhook(token, webhook.id), {
          title: "Webhook deleted.",
          detail: `Nothing more is sent to ${webhook.url}.`,
        }),
    }),
  );
  return row;
}
