// Webhooks (Standard Webhooks, https://www.standardwebhooks.com): the `webhooks` a user
// registers through the gateway, and the `webhook_deliveries` the notifier writes when a
// job ends and then posts. A delivery's `_id` is the `webhook-id` header, the same on
// every try, and derived from (webhook, job, event, the job's round): writing it twice
// writes it once, however often `mp3` is redelivered and however many notifiers take it.
// Deliveries wait in MongoDB with `nextAttemptAt`; a notifier claims a due one by moving
// `nextAttemptAt` past its lease and tagging it with a claim of its own, so a notifier
// that dies mid-try leaves it due again when the lease ends, and no two try it at once.
// Account deletion (converter/accounts.ts) removes both collections' documents by `userId`.
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { Type } from "@sinclair/typebox";
import { type Collection, type Db, ObjectId } from "mongodb";
import { checked } from "./config.ts";
import { DEFAULT_RETENTION_HOURS } from "./jobs.ts";
import { isDuplicateKey } from "./mongo.ts";

/** How long a delivery's record is kept: the default retention of a job (its retries end within a day). */
export const DELIVERY_RETENTION_SECONDS = DEFAULT_RETENTION_HOURS * 3600;

export const WEBHOOK_EVENTS = ["job.done", "job.failed"] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];
/** Webhooks one user may hold: a program needs a few, not a fan-out of thousands. */
export const MAX_WEBHOOKS_PER_USER = 20;
/** Tries a delivery keeps in its history (GET /webhooks/:id/deliveries). */
const TRIES_KEPT = 20;

export interface Webhook {
  _id: ObjectId;
  userId: string;
  url: string;
  events: WebhookEvent[];
  /** `whsec_` + base64 of 32 random bytes: the HMAC key, shown to its owner once. */
  secret: string;
  createdAt: Date;
}

export interface DeliveryTry {
  at: Date;
  /** The receiver's HTTP status, when it answered. */
  status?: number;
  /** Why the try failed, when it did (no answer in time, refused address, ...). */
  error?: string;
}

export interface WebhookDelivery {
  /** The `webhook-id` header (`msg_…`): the same on every try of this event. */
  _id: string;
  webhookId: ObjectId;
  userId: string;
  jobId: ObjectId;
  event: WebhookEvent;
  /** The job's round: 0, then one more for each retry its owner asked for (each retry ends anew). */
  round: number;
  /** The exact body posted (and signed) on every try. */
  payload: string;
  /** Tries started. */
  attempts: number;
  /** When the next try is due (while one is under way: when its claim lapses); absent once delivered or given up. */
  nextAttemptAt?: Date;
  /** The notifier try holding it now. */
  claim?: string;
  lastStatus?: number;
  lastError?: string;
  lastAttemptAt?: Date;
  deliveredAt?: Date;
  givenUpAt?: Date;
  createdAt: Date;
  /** The latest tries, oldest first. */
  tries: DeliveryTry[];
}

/** A new signing secret, as the spec serializes one: `whsec_` + base64 of 32 random bytes. */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString("base64")}`;
}

/** The message id of one event for one webhook: `msg_` + 27 base64url characters (no `.`, as the spec asks). */
export function deliveryId(webhookId: ObjectId, jobId: ObjectId, event: WebhookEvent, round: number): string {
  const digest = createHash("sha256").update(`${webhookId}.${jobId}.${event}.${round}`).digest("base64url");
  return `msg_${digest.slice(0, 27)}`;
}

/** The retry delays after each failed try (ms), as the spec's schedule, ending within a day of the first try. */
export const DEFAULT_RETRY_SCHEDULE = "5000,300000,1800000,7200000,18000000,36000000";

export function parseRetrySchedule(text: string): number[] {
  const delays = text.split(",").map((entry) => entry.trim());
  if (delays.some((entry) => !/^\d{1,10}$/.test(entry)))
    throw new Error("must be delays in milliseconds, comma-separated (e.g. 5000,300000)");
  return delays.map(Number);
}

/** WEBHOOK_RETRY_SCHEDULE_MS (notifier): checked when the config is loaded. */
export const RetrySchedule = checked(
  Type.String({
    default: DEFAULT_RETRY_SCHEDULE,
    description: "delays (ms, comma-separated) before each retry of a failed webhook delivery",
  }),
  parseRetrySchedule,
);

export function webhookStore(db: Db) {
  const webhooks: Collection<Webhook> = db.collection<Webhook>("webhooks");
  const deliveries: Collection<WebhookDelivery> = db.collection<WebhookDelivery>("webhook_deliveries");
  const parseId = (id: string) => (/^[0-9a-f]{24}$/i.test(id) ? new ObjectId(id) : null);

  return {
    webhooks,
    deliveries,

    /** Idempotent; run at start by the gateway and the notifier. */
    async ensureIndexes() {
      await webhooks.createIndex({ userId: 1, _id: 1 }, { name: "webhooks_by_user" });
      await deliveries.createIndex({ nextAttemptAt: 1 }, { name: "deliveries_due", sparse: true });
      await deliveries.createIndex({ webhookId: 1, createdAt: -1 }, { name: "deliveries_by_webhook_newest" });
      await deliveries.createIndex({ userId: 1 }, { name: "deliveries_by_user" });
      // A delivery carries a copy of its job: kept as long as a job is, then MongoDB drops it.
      await deliveries.createIndex(
        { createdAt: 1 },
        { name: "deliveries_expire", expireAfterSeconds: DELIVERY_RETENTION_SECONDS },
      );
    },

    async create(fields: Pick<Webhook, "userId" | "url" | "events">): Promise<Webhook> {
      const webhook: Webhook = { _id: new ObjectId(), ...fields, secret: newWebhookSecret(), createdAt: new Date() };
      await webhooks.insertOne(webhook);
      return webhook;
    },
    count: (userId: string) => webhooks.countDocuments({ userId }),
    list: (userId: string) => webhooks.find({ userId }).sort({ _id: 1 }).toArray(),
    /** The user's webhook by the id in a URL; null for no such id, or someone else's. */
    async owned(id: string, userId: string): Promise<Webhook | null> {
      const _id = parseId(id);
      return _id ? webhooks.findOne({ _id, userId }) : null;
    },
    get: (id: ObjectId) => webhooks.findOne({ _id: id }),
    /** The user's webhooks that asked for `event`. */
    forEvent: (userId: string, event: WebhookEvent) => webhooks.find({ userId, events: event }).toArray(),
    /** Removes the webhook and every delivery still waiting for it: nothing more is sent. */
    async remove(webhook: Webhook): Promise<void> {
      await webhooks.deleteOne({ _id: webhook._id });
      await deliveries.deleteMany({ webhookId: webhook._id });
    },

    /** Writes one delivery, due now, unless it is written already; answers whether this call wrote it. */
    async queue(
      delivery: Pick<WebhookDelivery, "webhookId" | "userId" | "jobId" | "event" | "round" | "payload">,
    ): Promise<{ id: string; written: boolean }> {
      const id = deliveryId(delivery.webhookId, delivery.jobId, delivery.event, delivery.round);
      const now = new Date();
      const fresh: WebhookDelivery = {
        _id: id,
        ...delivery,
        attempts: 0,
        nextAttemptAt: now,
        createdAt: now,
        tries: [],
      };
      try {
        await deliveries.insertOne(fresh);
        return { id, written: true };
      } catch (error) {
        // Written before (a redelivered `mp3`, or another notifier at the same moment): the same id.
        if (isDuplicateKey(error)) return { id, written: false };
        throw error;
      }
    },

    /** Takes the most overdue delivery for one try, held for `leaseMs`; null when none is due. */
    async claimDue(leaseMs: number): Promise<(WebhookDelivery & { claim: string }) | null> {
      const now = Date.now();
      const claim = randomUUID();
      const claimed = await deliveries.findOneAndUpdate(
        { nextAttemptAt: { $lte: new Date(now) } },
        { $set: { nextAttemptAt: new Date(now + leaseMs), claim }, $inc: { attempts: 1 } },
        { sort: { nextAttemptAt: 1 }, returnDocument: "after" },
      );
      return claimed as (WebhookDelivery & { claim: string }) | null;
    },
    /** When the next delivery falls due (or a claim lapses), if any waits. */
    async nextDue(): Promise<Date | undefined> {
      const next = await deliveries.findOne(
        { nextAttemptAt: { $exists: true } },
        { sort: { nextAttemptAt: 1 }, projection: { nextAttemptAt: 1 } },
      );
      return next?.nextAttemptAt;
    },
    /**
     * Records how a claimed try went: delivered, due again at `retryAt`, or given up (neither).
     * Only while the claim holds: a try whose lease lapsed and was taken over records nothing.
     */
    async record(
      claimed: { _id: string; claim: string },
      attempt: DeliveryTry,
      outcome: { delivered: true } | { retryAt: Date } | { givenUp: true },
    ): Promise<boolean> {
      const set: Partial<WebhookDelivery> = { lastAttemptAt: attempt.at };
      const unset: Record<string, ""> = { claim: "" };
      if (attempt.status === undefined) unset.lastStatus = "";
      else set.lastStatus = attempt.status;
      if (attempt.error === undefined) unset.lastError = "";
      else set.lastError = attempt.error;
      if ("retryAt" in outcome) set.nextAttemptAt = outcome.retryAt;
      else unset.nextAttemptAt = "";
      if ("delivered" in outcome) set.deliveredAt = attempt.at;
      if ("givenUp" in outcome) set.givenUpAt = attempt.at;
      const result = await deliveries.updateOne(
        { _id: claimed._id, claim: claimed.claim },
        { $set: set, $unset: unset, $push: { tries: { $each: [attempt], $slice: -TRIES_KEPT } } },
      );
      return result.matchedCount === 1;
    },
    /** Hands a claimed delivery back untried: due at once, its try not counted. */
    release: (claimed: { _id: string; claim: string }) =>
      deliveries.updateOne(
        { _id: claimed._id, claim: claimed.claim },
        { $set: { nextAttemptAt: new Date() }, $unset: { claim: "" }, $inc: { attempts: -1 } },
      ),
    /** A delivery whose webhook is gone: nothing to send it to. */
    drop: (id: string) => deliveries.deleteOne({ _id: id }),
    /** The webhook's latest deliveries, newest first. */
    recent: (webhookId: ObjectId, limit: number) =>
      deliveries.find({ webhookId }).sort({ createdAt: -1, _id: 1 }).limit(limit).toArray(),
  };
}

export type WebhookStore = ReturnType<typeof webhookStore>;
