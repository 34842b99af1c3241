// The Developer dialog's webhooks: the list (URL, events, when added), "Add webhook" with a
// URL and the events to send (the signing secret then shown once, with Copy), each one's
// recent deliveries (deliveries.ts), and Delete, asked once more in its row. A URL the
// gateway refuses (not http(s), a private address…) is said as the API words it.
import { ApiError } from "./api.ts";
import { deliveriesBox } from "./deliveries.ts";
import { createWebhook, deleteWebhook, listWebhooks, type Webhook, type WebhookEvent } from "./developer-api.ts";
import { askInRow, showOnce, timeOf } from "./developer-parts.ts";
import { developerError, EVENT_MEANINGS, EVENTS } from "./developer-text.ts";
import { $, busy, h, show } from "./page.ts";
import { current, sessionLost } from "./session.ts";

const form = $<HTMLFormElement>("webhook-form");
const urlInput = form.elements.namedItem("url") as HTMLInputElement;
const eventsField = $<HTMLFieldSetElement>("webhook-events");
const submit = form.querySelector<HTMLButtonElement>("button[type=submit]")!;
const message = $("webhook-message");
const created = $("webhook-created");
const list = $<HTMLUListElement>("webhook-list");
const empty = $("webhooks-empty");

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

/** Reads the list again; `quiet` keeps an earlier message (after an add or a delete). */
export async function loadWebhooks({ quiet = false } = {}) {
  const mine = current;
  if (!mine) return;
  if (!quiet) show(message, null);
  list.setAttribute("aria-busy", "true");
  try {
    const webhooks = await listWebhooks(mine.token);
    if (current !== mine) return;
    list.replaceChildren(...webhooks.map(webhookRow));
    empty.hidden = webhooks.length > 0;
  } catch (error) {
    if (!sessionLost(error)) show(message, developerError(error, "webhook"), "error");
  } finally {
    list.removeAttribute("aria-busy");
  }
}

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
      run: () => removeWebhook(webhook),
    }),
  );
  return row;
}

async function removeWebhook(webhook: Webhook) {
  const mine = current;
  if (!mine) return;
  try {
    await deleteWebhook(mine.token, webhook.id);
    show(message, { title: "Webhook deleted.", detail: `Nothing more is sent to ${webhook.url}.` });
  } catch (error) {
    if (sessionLost(error)) return;
    if (!(error instanceof ApiError && error.status === 404)) {
      show(message, developerError(error, "webhook"), "error");
      throw error;
    }
  }
  await loadWebhooks({ quiet: true });
  urlInput.focus(); // the row and its buttons are gone
}

async function add(event: SubmitEvent) {
  event.preventDefault();
  const mine = current;
  if (!mine) return;
  const events = chosenEvents();
  created.replaceChildren();
  if (events.length === 0) {
    show(message, { title: "Choose at least one event to send." }, "error");
    eventsField.querySelector("input")?.focus();
    return;
  }
  busy(submit, "Adding…");
  show(message, null);
  try {
    const webhook = await createWebhook(mine.token, { url: urlInput.value.trim(), events });
    form.reset();
    showOnce(created, {
      title: `The signing secret of ${webhook.url}`,
      label: "Signing secret",
      value: webhook.secret,
      use: "Your receiver checks each delivery's webhook-signature header with it (Standard Webhooks).",
    });
    await loadWebhooks({ quiet: true });
  } catch (error) {
    if (sessionLost(error)) return;
    show(message, developerError(error, "webhook"), "error");
    urlInput.focus();
  } finally {
    busy(submit, null);
  }
}

/** Forgets what the dialog showed: the secret shown once, messages, open deliveries. */
export function clearWebhooks() {
  created.replaceChildren();
  show(message, null);
  form.reset();
  list.replaceChildren(); // read again at the next opening, whoever is logged in then
  empty.hidden = true;
}

form.addEventListener("submit", (event) => void add(event as SubmitEvent));
created.addEventListener("dismissed", () => urlInput.focus());
