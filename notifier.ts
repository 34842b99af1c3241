// notifier: consumes `mp3` and emails the job's owner through Resend, once:
// the idempotency key `job-<id>-<status>` and the job's `notifiedAt` make a
// redelivered message send nothing twice. Resend being away is retried with
// backoff and then dead-lettered; a refusal retrying cannot fix is recorded.
import { Type } from "@sinclair/typebox";
import { Elysia } from "elysia";
import { ObjectId } from "mongodb";
import { Counter } from "prom-client";
import { AmqpUrl, LogLevel, MongoUrl, Port, PublicUrl, Url } from "./lib/config.ts";
import { health } from "./lib/health.ts";
import { type Job, jobStore } from "./lib/jobs.ts";
import type { Logger } from "./lib/log.ts";
import type { Mp3Message } from "./lib/messages.ts";
import { createMetrics } from "./lib/metrics.ts";
import { connectMongo, isMongoUnavailable, type Mongo, retryAfterMongo } from "./lib/mongo.ts";
import { problems } from "./lib/problem.ts";
import { connectQueue, type Delivery, QUEUES, type Queue } from "./lib/queue.ts";
import { runService } from "./lib/runner.ts";
import { composeEmail } from "./notifier/email.ts";
import { mailer, SendRefused } from "./notifier/mailer.ts";

// ── config ──────────────────────────────────────────────────────────────────
export const NotifierConfig = Type.Object({
  PORT: Port(3003),
  LOG_LEVEL: LogLevel,
  MONGODB_URL: MongoUrl,
  AMQP_URL: AmqpUrl,
  RESEND_API_KEY: Type.Optional(Type.String({ description: "Resend API key; unset = log emails instead of sending" })),
  RESEND_BASE_URL: Url(["http", "https"], "https://api.resend.com", "the Resend API's http(s):// base URL"),
  MAIL_FROM: Type.String({ minLength: 3, default: "m3dio <onboarding@resend.dev>", description: "the sender" }),
  PUBLIC_URL: PublicUrl,
  MAX_ATTEMPTS: Type.Integer({ minimum: 1, maximum: 20, default: 5, description: "sends tried before dead-lettering" }),
  RETRY_BASE_MS: Type.Integer({ minimum: 0, default: 2000, description: "first retry delay; doubles each time" }),
  SEND_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 10_000, description: "how long one send may take" }),
});
export type NotifierConfig = typeof NotifierConfig.static;

// ── models: the `mp3` message (lib/messages.ts), the emails (notifier/email.ts) ──
// ── errors: SendUnavailable, SendRefused (notifier/mailer.ts) ─────────────────

// ── the consumer ────────────────────────────────────────────────────────────
export interface NotifierDeps {
  config: NotifierConfig;
  log: Logger;
  mongo: Mongo;
  queue: Queue;
}

export function createNotifier({ config, log, mongo, queue }: NotifierDeps) {
  const jobs = jobStore(mongo.db);
  const metrics = createMetrics("notifier");
  const emails = new Counter({
    name: "notifier_emails_total",
    help: "emails, by outcome",
    labelNames: ["outcome"] as const,
    registers: [metrics.registry],
  });
  const mail = mailer({
    apiKey: config.RESEND_API_KEY,
    baseUrl: config.RESEND_BASE_URL,
    timeoutMs: config.SEND_TIMEOUT_MS,
    log,
  });
  let stopping = false;

  /** Failures a retry may fix are thrown to the queue, which retries them (counted). */
  async function handle(delivery: Delivery<Mp3Message>): Promise<void> {
    const jobId = new ObjectId(delivery.body.jobId);
    const job = await jobs.get(jobId);
    const jobLog = log.child({ jobId: delivery.body.jobId, ...(job ? { userId: job.userId } : {}) });
    if (!job) return jobLog.info({ event: "job.gone" }, "job no longer exists; nothing to tell");
    if (job.notifiedAt) return jobLog.info({ event: "email.duplicate" }, "already notified; redelivery ignored");
    if (job.status !== "done" && job.status !== "failed") {
      return jobLog.warn({ event: "job.unfinished", status: job.status }, "job not finished; nothing to tell yet");
    }
    try {
      const emailId = await mail.send(composeEmail(job, config), `job-${job._id}-${job.status}`);
      await jobs.markNotified(job._id);
      emails.inc({ outcome: mail.sends ? "sent" : "logged" });
      if (mail.sends) jobLog.info({ event: "email.sent", emailId, status: job.status }, "email sent");
    } catch (error) {
      await sendFailed(delivery, job, jobLog, error);
    }
  }

  /** Sorts a failed send: MongoDB away → thrown (waited out); refused → recorded; else retried later. */
  async function sendFailed(delivery: Delivery<Mp3Message>, job: Job, jobLog: Logger, error: unknown) {
    // Sent but not recorded: retryAfterMongo waits for MongoDB; the retry's send is deduplicated by its key.
    if (isMongoUnavailable(error)) throw error;
    if (error instanceof SendRefused) {
      await jobs.markNotified(job._id, error.message);
      emails.inc({ outcome: "refused" });
      jobLog.error({ event: "email.refused", reason: error.message }, "email refused; recorded on the job");
      return;
    }
    if (delivery.attempt < delivery.maxAttempts) {
      const delay = config.RETRY_BASE_MS * 2 ** (delivery.attempt - 1);
      emails.inc({ outcome: "retried" });
      jobLog.warn(
        { event: "email.retry", err: error, attempt: delivery.attempt, retryInMs: delay },
        "email not sent; will retry",
      );
      await Bun.sleep(delay);
    }
    return delivery.retry(error); // on the last attempt this dead-letters and calls exhausted()
  }

  /** Resend stayed away through every attempt: the message goes to `mp3.dead`, logged with its job. */
  function exhausted(body: Mp3Message) {
    emails.inc({ outcome: "dead_lettered" });
    log.error(
      { event: "email.dead_lettered", jobId: body.jobId, attempts: config.MAX_ATTEMPTS },
      "email not sent after all attempts; dead-lettered",
    );
  }

  const app = new Elysia({ name: "notifier" })
    .use(problems(log))
    .use(metrics.plugin)
    .use(health({ mongodb: () => mongo.ping(), rabbitmq: () => queue.ping() }));

  return {
    app,
    async start() {
      if (!mail.sends)
        log.warn(
          { event: "email.not_configured" },
          "RESEND_API_KEY is not set: emails are written to the log instead of sent",
        );
      await queue.consume(
        QUEUES.mp3,
        { prefetch: 8, maxAttempts: config.MAX_ATTEMPTS, onExhausted: exhausted },
        retryAfterMongo(mongo, log, handle, { giveUp: () => stopping }),
      );
    },
    /** Stops taking messages and lets the ones in hand finish (a retry's wait included). */
    async stop() {
      stopping = true;
      await queue.stopConsuming();
      while (queue.inFlight() > 0) await Bun.sleep(50);
    },
  };
}

// ── start and graceful stop ─────────────────────────────────────────────────
if (import.meta.main) {
  await runService(
    "notifier",
    NotifierConfig,
    async (config, log) => {
      const mongo = await connectMongo(config.MONGODB_URL, { appName: "notifier" });
      const queue = await connectQueue(config.AMQP_URL, log);
      return { service: createNotifier({ config, log, mongo, queue }), resources: [mongo, queue] };
    },
    // A message in hand may wait out its retry delay (RETRY_BASE_MS doubling) before it settles.
    (config) => ({
      httpGraceMs: 1000,
      deadlineMs: config.RETRY_BASE_MS * 2 ** config.MAX_ATTEMPTS + config.SEND_TIMEOUT_MS + 5000,
    }),
  );
}
