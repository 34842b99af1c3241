// How the Developer dialog words things: times, the webhook events, a delivery's state, and
// what the API refused. Nothing here touches the document, so it is tested without one.
import { ApiError } from "./api.ts";
import type { Delivery, WebhookEvent } from "./developer-api.ts";
import { describeError, type Message, sentence } from "./errors.ts";

/** What each event means (typed by the model's events: a new event without words fails the type check). */
export const EVENT_MEANINGS: Record<WebhookEvent, string> = {
  "job.done": "a conversion's MP3 is ready",
  "job.failed": "a conversion failed",
};
export const EVENTS = Object.keys(EVENT_MEANINGS) as WebhookEvent[];

/** "1 Dec 2026, 10:05" in the reader's own language and time zone. */
export const dateText = (iso: string) =>
  new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });

/** To the second, the date too unless it is today: deliveries are tried seconds apart. */
export function momentText(iso: string, now = new Date()): string {
  const date = new Date(iso);
  const today = date.toDateString() === now.toDateString();
  return date.toLocaleString(undefined, today ? { timeStyle: "medium" } : { dateStyle: "medium", timeStyle: "medium" });
}

const tries = (n: number) => `${n} ${n === 1 ? "try" : "tries"}`;

/** What the receiver last said: "it answered 500", or why there was no answer. */
function lastAnswer(delivery: Delivery): string {
  if (delivery.lastStatus !== undefined) return `it answered ${delivery.lastStatus}`;
  return delivery.lastError ? delivery.lastError.replace(/\.$/, "") : "no answer";
}

export type DeliveryState = Delivery["state"];
export const STATE_LABELS: Record<DeliveryState, string> = {
  delivered: "Delivered",
  pending: "Pending",
  given_up: "Given up",
};

/** The delivery's state in a sentence: when it arrived, when it is tried next, or when it was given up. */
export function deliveryDetail(delivery: Delivery, now = new Date()): string {
  const at = (iso: string | undefined) => (iso ? momentText(iso, now) : "an unknown time");
  switch (delivery.state) {
    case "delivered":
      return delivery.attempts <= 1
        ? `Delivered at ${at(delivery.deliveredAt)} on the first try.`
        : `Delivered at ${at(delivery.deliveredAt)} after ${tries(delivery.attempts)}.`;
    case "given_up":
      return `Given up at ${at(delivery.givenUpAt)} after ${tries(delivery.attempts)}: ${lastAnswer(delivery)}.`;
    default:
      return delivery.attempts === 0
        ? `Not tried yet: first try at ${at(delivery.nextAttemptAt)}.`
        : `${tries(delivery.attempts)} so far: ${lastAnswer(delivery)}. Next try at ${at(delivery.nextAttemptAt)}.`;
  }
}

export type Subject = "key" | "webhook";

const FIELD_TITLES: Record<string, string> = {
  name: "Please check the key's name.",
  url: "That URL can't be used.",
  events: "Please choose the events again.",
};
const FIELD_NAMES: Record<string, string> = { name: "The name", url: "The URL", events: "The events" };

/** A 422's fields as sentences: "The URL points to a private address." */
function fieldsRefused(error: ApiError): Message {
  const issues = error.problem.errors ?? [];
  const first = issues[0]?.field.split(".")[0] ?? "";
  const sentences = issues.map(({ field, message }) => {
    const name = FIELD_NAMES[field.split(".")[0]!] ?? field;
    return sentence(/^the /i.test(message) ? message : `${name} ${message}`);
  });
  return {
    title: FIELD_TITLES[first] ?? "That can't be saved.",
    detail: sentences.join(" ") || sentence(error.problem.detail),
  };
}

/** What to tell the person about `error` from a key or webhook route; the rest is worded as everywhere (errors.ts). */
export function developerError(error: unknown, subject: Subject): Message {
  if (!(error instanceof ApiError)) return describeError(error, "job");
  const what = subject === "key" ? "API key" : "webhook";
  const detail = sentence(error.problem.detail);
  switch (error.status) {
    case 403:
      return { title: "API keys can be managed only while logged in with your password.", detail };
    case 404:
      return { title: `That ${what} no longer exists.`, detail: "The list now shows what there is." };
    case 409:
      return { title: detail ?? `You have as many ${what}s as an account may have: delete one first.` };
    case 422:
      return fieldsRefused(error);
    default:
      return describeError(error, "job");
  }
}
