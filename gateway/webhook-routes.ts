// The webhook routes (for a caller with an access token or an API key): register a URL to be told when
// the caller's jobs end, list and delete them, and see each one's latest deliveries. The
// URL follows the link rules (lib/link.ts): http(s), no credentials, and every address its
// host resolves to public (or in URL_ALLOW_HOSTS); the notifier checks again at every try.
// The notifier posts the deliveries (notifier/webhooks.ts); the store is lib/webhooks.ts.
import { Elysia } from "elysia";
import { type AllowList, approvedAddresses, BadLink, LinkUnavailable, parseLink, type Resolver } from "../lib/link.ts";
import type { Logger } from "../lib/log.ts";
import { Conflict, NotFound, Unavailable, Unprocessable } from "../lib/problem.ts";
import {
  MAX_WEBHOOKS_PER_USER,
  WEBHOOK_EVENTS,
  type Webhook,
  type WebhookDelivery,
  type WebhookStore,
} from "../lib/webhooks.ts";
import { bearer, type Caller, type TokenVerifier, USER_OR_KEY } from "./bearer.ts";
import { gatewayModels } from "./models.ts";
import {
  DeliveriesQuery,
  type DeliveryView,
  type NewWebhook,
  WebhookId,
  type WebhookView,
  webhookDocs,
  webhookModels,
} from "./webhook-models.ts";

export interface WebhookRoutesDeps {
  webhooks: WebhookStore;
  verifier: TokenVerifier;
  allowList: AllowList;
  log: Logger;
  /** Replaces DNS (tests). */
  resolve?: Resolver;
}

/** Registration's DNS look-up may take this long. */
const LOOKUP_TIMEOUT_MS = 5000;

const webhookView = (webhook: Webhook): WebhookView => ({
  id: webhook._id.toHexString(),
  url: webhook.url,
  events: webhook.events,
  createdAt: webhook.createdAt.toISOString(),
});

const iso = (date: Date | undefined) => (date ? date.toISOString() : undefined);

function deliveryView(delivery: WebhookDelivery): DeliveryView {
  const optional = {
    lastStatus: delivery.lastStatus,
    lastError: delivery.lastError,
    lastAttemptAt: iso(delivery.lastAttemptAt),
    // While a try is under way nextAttemptAt is its claim's end: shown all the same, it is when it is tried at the latest.
    nextAttemptAt: iso(delivery.nextAttemptAt),
    deliveredAt: iso(delivery.deliveredAt),
    givenUpAt: iso(delivery.givenUpAt),
  };
  return {
    id: delivery._id,
    event: delivery.event,
    jobId: delivery.jobId.toHexString(),
    state: delivery.deliveredAt ? "delivered" : delivery.givenUpAt ? "given_up" : "pending",
    attempts: delivery.attempts,
    ...Object.fromEntries(Object.entries(optional).filter(([, value]) => value !== undefined)),
    createdAt: delivery.createdAt.toISOString(),
    tries: delivery.tries.map((tried) => ({ ...tried, at: tried.at.toISOString() })),
  };
}

/** The URL as the link rules allow it, or a 422 naming `url` (503 while DNS cannot answer). */
async function checkedUrl(raw: string, allow: AllowList, resolve: Resolver | undefined): Promise<string> {
  const refuse = (reason: string) => {
    const message = reason.replace(/^the link/, "the URL");
    return new Unprocessable(message, [{ field: "url", message }]);
  };
  try {
    const url = parseLink(raw);
    const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
    await approvedAddresses(host, { allow, resolve }, AbortSignal.timeout(LOOKUP_TIMEOUT_MS), false);
    return url.href;
  } catch (error) {
    if (error instanceof BadLink) throw refuse(error.message);
    if (error instanceof LinkUnavailable || (error as Error).name === "TimeoutError")
      throw new Unavailable("the URL's host could not be looked up just now; try again shortly");
    throw error;
  }
}

export function webhookRoutes({ webhooks, verifier, allowList, log, resolve }: WebhookRoutesDeps) {
  async function owned(id: string, user: Caller): Promise<Webhook> {
    const webhook = await webhooks.owned(id, user.id);
    if (!webhook) throw new NotFound("no such webhook");
    return webhook;
  }

  async function register(body: NewWebhook, user: Caller): Promise<WebhookView & { secret: string }> {
    const url = await checkedUrl(body.url, allowList, resolve);
    if ((await webhooks.count(user.id)) >= MAX_WEBHOOKS_PER_USER)
      throw new Conflict(`you have ${MAX_WEBHOOKS_PER_USER} webhooks already; delete one first`);
    const events = body.events ?? [...WEBHOOK_EVENTS];
    const webhook = await webhooks.create({ userId: user.id, url, events });
    log.info({ event: "webhook.registered", webhookId: webhook._id, userId: user.id, events }, "webhook registered");
    return { ...webhookView(webhook), secret: webhook.secret };
  }

  return new Elysia({ name: "gateway.webhook-routes" })
    .use(gatewayModels)
    .use(webhookModels)
    .use(bearer(verifier))
    .guard({ auth: "user-or-key", detail: { security: USER_OR_KEY } }, (app) =>
      app
        .post("/webhooks", async ({ body, user, status }) => status(201, await register(body, user)), {
          body: "NewWebhook",
          response: { 201: "CreatedWebhook", 401: "Problem", 409: "Problem", 422: "Problem", 503: "Problem" },
          detail: webhookDocs.create,
        })
        .get("/webhooks", async ({ user }) => ({ items: (await webhooks.list(user.id)).map(webhookView) }), {
          response: { 200: "WebhookList", 401: "Problem" },
          detail: webhookDocs.list,
        })
        .delete(
          "/webhooks/:id",
          async ({ params, user, status }) => {
            const webhook = await owned(params.id, user);
            await webhooks.remove(webhook);
            log.info({ event: "webhook.deleted", webhookId: webhook._id, userId: user.id }, "webhook deleted");
            return status(204, undefined);
          },
          { params: WebhookId, detail: webhookDocs.remove },
        )
        .get(
          "/webhooks/:id/deliveries",
          async ({ params, query, user }) => {
            const webhook = await owned(params.id, user);
            return { items: (await webhooks.recent(webhook._id, query.limit)).map(deliveryView) };
          },
          {
            params: WebhookId,
            query: DeliveriesQuery,
            response: { 200: "WebhookDeliveries", 401: "Problem", 404: "Problem", 422: "Problem" },
            detail: webhookDocs.deliveries,
          },
        ),
    );
}
