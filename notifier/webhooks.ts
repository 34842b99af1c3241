// The notifier's webhooks: when `mp3` says a job ended, one delivery per webhook of the
// owner that asked for the event is written to MongoDB (idempotently: lib/webhooks.ts);
// a loop of a few workers claims due deliveries and posts them (notifier/webhook-post.ts).
// A try that is not answered 2xx is tried again after the next delay of the schedule
// (WEBHOOK_RETRY_SCHEDULE_MS, or the receiver's Retry-After if longer), and given up once
// the schedule is spent; a 410 Gone gives up at once (the receiver wants no more). Every
// try is recorded on the delivery, which GET /webhooks/:id/deliveries shows.
// Durable and shared: deliveries live in MongoDB, so they outlast a notifier's restart, and
// each try is claimed for a lease, so several notifiers never try one delivery at once.
import { ObjectId } from "mongodb";
import { Counter, type Registry } from "prom-client";
import { jobView } from "../gateway/view.ts";
import type { JobStore } from "../lib/jobs.ts";
import type { AllowList, Resolver } from "../lib/link.ts";
import type { Logger } from "../lib/log.ts";
import type { Mp3Message } from "../lib/messages.ts";
import { isMongoUnavailable } from "../lib/mongo.ts";
import type { DeliveryTry, WebhookDelivery, WebhookEvent, WebhookStore } from "../lib/webhooks.ts";
import { naps } from "./naps.ts";
import { type PostResult, postSigned } from "./webhook-post.ts";

/** Deliveries tried at once by one notifier. */
const WORKERS = 4;
/** Longest an idle worker waits before looking again (another notifier's deliveries, a lapsed claim). */
const MAX_IDLE_MS = 5000;
/** A claim outlasts the longest try by this much, so a slow try is never taken over while it runs. */
const LEASE_MARGIN_MS = 30_000;
/** A receiver's Retry-After is followed up to this long. */
const MAX_RETRY_AFTER_MS = 24 * 3_600_000;

export interface WebhookSenderDeps {
  store: WebhookStore;
  jobs: JobStore;
  log: Logger;
  registry: Registry;
  allow: AllowList;
  timeoutMs: number;
  /** Delays before each retry (ms); the try after the last one is the last. */
  schedule: number[];
  /** Replaces DNS (tests). */
  resolve?: Resolver;
}

export function webhookSender({ store, jobs, log, registry, allow, timeoutMs, schedule, resolve }: WebhookSenderDeps) {
  const outcomes = new Counter({
    name: "notifier_webhook_attempts_total",
    help: "webhook delivery tries, by outcome (delivered, failed, refused, given_up)",
    labelNames: ["outcome"] as const,
    registers: [registry],
  });
  const stopping = new AbortController();
  const { nap, wake } = naps();
  let workers: Promise<void>[] = [];
  const tries = new Set<Promise<void>>();

  /** Writes the deliveries of a job's end, one per webhook that asked for it; again is harmless. */
  async function announce(message: Mp3Message): Promise<void> {
    const job = await jobs.get(new ObjectId(message.jobId));
    if (!job || (job.status !== "done" && job.status !== "failed")) return;
    const event: WebhookEvent = job.status === "done" ? "job.done" : "job.failed";
    const hooks = await store.forEvent(job.userId, event);
    if (hooks.length === 0) return;
    const payload = JSON.stringify({
      type: event,
      timestamp: (job.finishedAt ?? job.updatedAt).toISOString(),
      data: jobView(job),
    });
    for (const webhook of hooks) {
      const round = job.retries ?? 0;
      const fields = { webhookId: webhook._id, userId: job.userId, jobId: job._id, event, round, payload };
      const { id, written } = await store.queue(fields);
      const about = { deliveryId: id, webhookId: webhook._id, jobId: job._id, userId: job.userId, type: event };
      if (written) log.info({ event: "webhook.queued", ...about }, "webhook delivery queued");
      else log.info({ event: "webhook.duplicate", ...about }, "webhook delivery queued before; redelivery ignored");
    }
    wake();
  }

  /** One try of a claimed delivery, recorded. */
  async function attempt(delivery: WebhookDelivery & { claim: string }): Promise<void> {
    const fields = {
      deliveryId: delivery._id,
      webhookId: delivery.webhookId,
      jobId: delivery.jobId,
      userId: delivery.userId,
      type: delivery.event,
      attempt: delivery.attempts,
    };
    const webhook = await store.get(delivery.webhookId);
    if (!webhook) {
      await store.drop(delivery._id);
      return log.info({ event: "webhook.dropped", ...fields }, "the webhook was deleted; delivery dropped");
    }
    const at = new Date();
    const result = await postSigned(
      webhook.url,
      { id: delivery._id, body: delivery.payload, secret: webhook.secret },
      { allow, timeoutMs, resolve },
    );
    const tried: DeliveryTry = "status" in result ? { at, status: result.status } : { at, error: result.error };
    if ("status" in result && result.status >= 200 && result.status < 300) {
      await store.record(delivery, tried, { delivered: true });
      outcomes.inc({ outcome: "delivered" });
      return log.info({ event: "webhook.delivered", ...fields, status: result.status }, "webhook delivered");
    }
    if ("status" in result && result.status < 400 && result.status >= 300) tried.error = "redirects are not followed";
    const delay = retryDelay(delivery.attempts, result);
    if (delay === undefined) {
      await store.record(delivery, tried, { givenUp: true });
      outcomes.inc({ outcome: "given_up" });
      return log.warn({ event: "webhook.given_up", ...fields, ...outcomeFields(result) }, "webhook delivery given up");
    }
    await store.record(delivery, tried, { retryAt: new Date(Date.now() + delay) });
    const refused = "refused" in result && result.refused;
    outcomes.inc({ outcome: refused ? "refused" : "failed" });
    log.warn(
      { event: refused ? "webhook.refused" : "webhook.failed", ...fields, ...outcomeFields(result), retryInMs: delay },
      refused ? "webhook URL resolves to a private address; not sent" : "webhook not delivered; will retry",
    );
  }

  /** The wait before the next try, or undefined when this was the last (the schedule is spent, or 410 Gone). */
  function retryDelay(attempts: number, result: PostResult): number | undefined {
    if ("status" in result && result.status === 410) return undefined;
    const scheduled = schedule[attempts - 1];
    if (scheduled === undefined) return undefined;
    const asked = "retryAfterMs" in result ? Math.min(result.retryAfterMs ?? 0, MAX_RETRY_AFTER_MS) : 0;
    // Some jitter, as the specification recommends, so failures caused by load do not come back in step.
    return Math.max(scheduled, asked) + Math.floor(Math.random() * scheduled * 0.1);
  }

  async function work(): Promise<void> {
    while (!stopping.signal.aborted) {
      try {
        const due = await store.claimDue(timeoutMs + LEASE_MARGIN_MS);
        // Claimed just as the notifier stops: handed back, due at once for the next notifier.
        if (due && stopping.signal.aborted) await store.release(due);
        else if (due) await tracked(attempt(due));
        else await idle((await store.nextDue())?.getTime());
      } catch (error) {
        const away = isMongoUnavailable(error);
        log[away ? "warn" : "error"](
          { event: away ? "store.unavailable" : "webhook.loop_error", err: error },
          "webhook deliveries: will look again shortly (a claimed try is taken again when its lease ends)",
        );
        await idle(Date.now() + 1000);
      }
    }
  }

  /** Runs a try, known to `stop()` until it ends. */
  async function tracked(trying: Promise<void>): Promise<void> {
    tries.add(trying);
    try {
      await trying;
    } finally {
      tries.delete(trying);
    }
  }

  /** Waits until `dueAt` (at most MAX_IDLE_MS), a new delivery, or the stop. */
  function idle(dueAt: number | undefined): Promise<void> {
    return nap(Math.min(MAX_IDLE_MS, Math.max(0, (dueAt ?? Number.POSITIVE_INFINITY) - Date.now())));
  }

  return {
    announce,
    /** Starts the workers (once). */
    start() {
      if (workers.length === 0) workers = Array.from({ length: WORKERS }, () => work());
    },
    /**
     * No new tries; the ones under way finish (each within the timeout). A worker waiting on
     * MongoDB is not waited for: it ends when its call does, and hands back what it claimed.
     */
    async stop() {
      stopping.abort();
      wake();
      await Promise.all(tries);
    },
  };
}

function outcomeFields(result: PostResult) {
  return "status" in result ? { status: result.status } : { reason: result.error, ...(result.refused ?? {}) };
}

export type WebhookSender = ReturnType<typeof webhookSender>;
