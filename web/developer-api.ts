// The routes the Developer dialog uses: API keys (/auth/keys: a login's token only, never a
// key) and webhooks with their deliveries (/webhooks). Their bodies and answers are the
// server's own models, imported as types only (no server code is bundled).
import type { CreatedWebhook, DeliveryView, NewWebhook, WebhookView } from "../gateway/webhook-models.ts";
import type { ApiKeyList, CreatedApiKey } from "../lib/account-models.ts";
import { call, json } from "./api.ts";

/** A key as the list shows it: its name, first characters, when made and last used (never: null). */
export type ApiKey = (typeof ApiKeyList)["static"]["items"][number];
/** A key just made: the key itself is in this answer only. */
export type NewApiKey = (typeof CreatedApiKey)["static"];
export type Webhook = WebhookView;
/** A webhook just registered: its signing secret is in this answer only. */
export type NewWebhookAnswer = (typeof CreatedWebhook)["static"];
export type Delivery = DeliveryView;
export type WebhookEvent = Webhook["events"][number];

export async function listKeys(token: string): Promise<ApiKey[]> {
  return ((await (await call("/auth/keys", { token })).json()) as (typeof ApiKeyList)["static"]).items;
}

export async function createKey(token: string, name: string): Promise<NewApiKey> {
  return (await call("/auth/keys", { ...json({ name }), token })).json();
}

export async function deleteKey(token: string, id: number): Promise<void> {
  await call(`/auth/keys/${id}`, { method: "DELETE", token });
}

export async function listWebhooks(token: string): Promise<Webhook[]> {
  return ((await (await call("/webhooks", { token })).json()) as { items: Webhook[] }).items;
}

export async function createWebhook(token: string, body: NewWebhook): Promise<NewWebhookAnswer> {
  return (await call("/webhooks", { ...json(body), token })).json();
}

export async function deleteWebhook(token: string, id: string): Promise<void> {
  await call(`/webhooks/${encodeURIComponent(id)}`, { method: "DELETE", token });
}

/** The webhook's latest deliveries, newest first. */
export async function listDeliveries(token: string, id: string, limit = 10): Promise<Delivery[]> {
  const path = `/webhooks/${encodeURIComponent(id)}/deliveries?limit=${limit}`;
  return ((await (await call(path, { token })).json()) as { items: Delivery[] }).items;
}
