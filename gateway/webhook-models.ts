// The webhook routes' models and OpenAPI text (gateway/webhook-routes.ts), and the event
// the notifier posts (WebhookEvent: described in components.schemas and, as OpenAPI 3.1
// allows, under the document's `webhooks`).
import { Elysia, t } from "elysia";
import { MAX_LINK_LENGTH } from "../lib/link.ts";
import { registered } from "../lib/openapi.ts";
import { MAX_WEBHOOKS_PER_USER, WEBHOOK_EVENTS } from "../lib/webhooks.ts";
import { JobView } from "./models.ts";
import { routeDocs } from "./route-docs.ts";

const EventName = t.UnionEnum(WEBHOOK_EVENTS, {
  description: "`job.done`: a job's MP3 is ready; `job.failed`: a job failed (its `error` says why)",
});
const Events = t.Array(EventName, {
  minItems: 1,
  uniqueItems: true,
  description: "the events posted to this URL",
});

const EXAMPLE = {
  id: "6650f1c2a1b2c3d4e5f60718",
  url: "https://example.com/m3dio-hook",
  events: ["job.done", "job.failed"],
  createdAt: "2026-12-01T10:00:00.000Z",
};

export const NewWebhook = t.Object(
  {
    url: t.String({
      maxLength: MAX_LINK_LENGTH,
      description: "an http(s) URL on a public address, without user name or password; redirects are not followed",
      examples: ["https://example.com/m3dio-hook"],
    }),
    events: t.Optional({ ...Events, description: "the events to post; default both" }),
  },
  { additionalProperties: false, examples: [{ url: EXAMPLE.url, events: ["job.done"] }, { url: EXAMPLE.url }] },
);

export type NewWebhook = typeof NewWebhook.static;

export const WebhookView = t.Object(
  {
    id: t.String(),
    url: t.String(),
    events: Events,
    createdAt: t.String({ format: "date-time" }),
  },
  { examples: [EXAMPLE] },
);
export type WebhookView = typeof WebhookView.static;

export const CreatedWebhook = t.Object(
  {
    ...WebhookView.properties,
    secret: t.String({
      pattern: "^whsec_[A-Za-z0-9+/]+={0,2}$",
      description:
        "the signing secret (`whsec_` + base64 of 32 random bytes): shown only now. Verify each delivery's `webhook-signature` with it.",
    }),
  },
  { examples: [{ ...EXAMPLE, secret: "whsec_ZCp7XAbnc3cMqYJTeMUa3ynkAmyF8kvzlqvCq3QHxQs=" }] },
);

const DeliveryTry = t.Object({
  at: t.String({ format: "date-time" }),
  status: t.Optional(t.Integer({ description: "the status your URL answered" })),
  error: t.Optional(t.String({ description: "why the try failed when there was no 2xx answer" })),
});

export const DeliveryView = t.Object(
  {
    id: t.String({ description: "the `webhook-id` header: the same on every try of this event" }),
    event: EventName,
    jobId: t.String(),
    state: t.UnionEnum(["pending", "delivered", "given_up"], {
      description: "`pending`: not yet answered 2xx, tried again at `nextAttemptAt`; `given_up`: no more tries",
    }),
    attempts: t.Integer({ minimum: 0, description: "tries so far" }),
    lastStatus: t.Optional(t.Integer({ description: "the status of the last answer" })),
    lastError: t.Optional(t.String()),
    lastAttemptAt: t.Optional(t.String({ format: "date-time" })),
    nextAttemptAt: t.Optional(t.String({ format: "date-time", description: "when it is tried next, while pending" })),
    deliveredAt: t.Optional(t.String({ format: "date-time" })),
    givenUpAt: t.Optional(t.String({ format: "date-time" })),
    createdAt: t.String({ format: "date-time", description: "when the event happened and was queued" }),
    tries: t.Array(DeliveryTry, { description: "the latest tries (up to 20), oldest first" }),
  },
  {
    examples: [
      {
        id: "msg_Xk3b0c9Qm1T2vYwq8Rr5sLpA7dE",
        event: "job.done",
        jobId: "6650f1c2a1b2c3d4e5f60719",
        state: "pending",
        attempts: 1,
        lastStatus: 500,
        lastAttemptAt: "2026-12-01T10:05:00.000Z",
        nextAttemptAt: "2026-12-01T10:05:05.000Z",
        createdAt: "2026-12-01T10:05:00.000Z",
        tries: [{ at: "2026-12-01T10:05:00.000Z", status: 500 }],
      },
    ],
  },
);
export type DeliveryView = typeof DeliveryView.static;

export const WebhookEvent = t.Object(
  {
    type: EventName,
    timestamp: t.String({ format: "date-time", description: "when the job ended" }),
    data: { ...JobView, description: "the job, as GET /jobs/:id shows it" },
  },
  {
    description:
      "What is POSTed to a webhook's URL (application/json), following the Standard Webhooks specification: " +
      "headers `webhook-id` (the same on every try of one event: use it to ignore repeats), `webhook-timestamp` " +
      "(unix seconds of this try) and `webhook-signature` (`v1,` + base64 of HMAC-SHA256 over " +
      '"<webhook-id>.<webhook-timestamp>.<raw body>", keyed by the base64-decoded part of the secret after `whsec_`). ' +
      "Answer 2xx to acknowledge; anything else, a redirect or no answer within 10 s is tried again " +
      "after 5 s, 5 min, 30 min, 2 h, 5 h and 10 h (the defaults), then given up. 410 Gone stops the tries of that event.",
    examples: [
      {
        type: "job.done",
        timestamp: "2026-12-01T10:05:00.000Z",
        data: {
          id: "6650f1c2a1b2c3d4e5f60719",
          status: "done",
          phase: "converting",
          progress: 100,
          source: { kind: "upload", filename: "talk.mp4", bytes: 10485760, contentType: "video/mp4" },
          options: { quality: 2, cover: "frame", normalize: false },
          audio: { bytes: 3145728, durationSec: 125.4, fileId: "6650f1c2a1b2c3d4e5f6071a" },
          createdAt: "2026-12-01T10:04:10.000Z",
          updatedAt: "2026-12-01T10:05:00.000Z",
          expiresAt: "2026-12-08T10:05:00.000Z",
          links: {
            self: "/jobs/6650f1c2a1b2c3d4e5f60719",
            events: "/jobs/6650f1c2a1b2c3d4e5f60719/events",
            audio: "/jobs/6650f1c2a1b2c3d4e5f60719/audio",
            share: "/jobs/6650f1c2a1b2c3d4e5f60719/share",
          },
        },
      },
    ],
  },
);

export const WebhookId = t.Object({ id: t.String() });
export const DeliveriesQuery = t.Object({ limit: t.Integer({ minimum: 1, maximum: 100, default: 20 }) });

export const webhookModels = new Elysia({ name: "gateway.webhook-models" }).model({
  NewWebhook: registered(NewWebhook),
  Webhook: registered(WebhookView),
  CreatedWebhook: registered(CreatedWebhook),
  WebhookList: registered(t.Object({ items: t.Array(WebhookView) })),
  WebhookDeliveries: registered(t.Object({ items: t.Array(DeliveryView) })),
  WebhookEvent: registered(WebhookEvent),
});

/** The document's OpenAPI 3.1 `webhooks`: what the notifier posts, by event. */
export const webhookDocument = Object.fromEntries(
  WEBHOOK_EVENTS.map((event) => [
    event,
    {
      post: {
        summary: event === "job.done" ? "A job's MP3 is ready" : "A job failed",
        requestBody: {
          required: true,
          content: { "application/json": { schema: { $ref: "#/components/schemas/WebhookEvent" } } },
        },
        responses: { "200": { description: "any 2xx acknowledges the event" } },
      },
    },
  ]),
);

export const webhookDocs = routeDocs({
  create: {
    tags: ["webhooks"],
    summary: "Register a URL to be told when your jobs end: 201 with the signing secret, shown once",
    description:
      "The URL must be http(s), without credentials, and reach a public address (checked now and at every delivery): " +
      `otherwise 422 naming \`url\`. At most ${MAX_WEBHOOKS_PER_USER} webhooks per user (409). ` +
      "Each delivery is signed as the Standard Webhooks specification says (schema WebhookEvent).",
    responses: {
      201: { description: "the webhook with its signing secret (`whsec_…`), shown only now" },
      409: { description: `you have ${MAX_WEBHOOKS_PER_USER} webhooks already: delete one first` },
      422: { description: "`url` or `events` does not fit: `errors` names the field" },
      503: { description: "the URL's host could not be looked up just now, or MongoDB is away: try again shortly" },
    },
  },
  list: {
    tags: ["webhooks"],
    summary: "Your webhooks (without their secrets)",
    responses: { 200: { description: "your webhooks, without their secrets" } },
  },
  remove: {
    tags: ["webhooks"],
    summary: "Delete a webhook: 204; its deliveries not yet made are not made",
    responses: {
      204: { description: "deleted" },
      401: { description: "no valid bearer token (problem+json)" },
      404: { description: "no such webhook of yours (problem+json)" },
    },
  },
  deliveries: {
    tags: ["webhooks"],
    summary: "A webhook's latest deliveries, newest first: each event's tries, answers and next try",
    responses: {
      200: { description: "the webhook's latest `limit` deliveries, newest first" },
      404: { description: "no such webhook of yours" },
      422: { description: "`limit` is not an integer between 1 and 100" },
    },
  },
});
