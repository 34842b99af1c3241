// notifier: consumes `mp3` and emails the job's owner through Resend, once (and `email`:
// the account emails auth queues, notifier/account-emails.ts):
// the idempotency key `job-<id>-<status>` and the job's `notifiedAt` make a
// redelivered message send nothing twice. Resend being away is retried with
// backoff and then dead-lettered; a refusal retrying cannot fix is recorded.
// Only a verified address is told (the job's `emailVerified`); the "ready" email's
// download link is signed with LINK_SIGNING_KEY, which the gateway checks.
// The same `mp3` message queues the owner's webhook deliveries, which a loop of their
// own posts and retries (notifier/webhooks.ts).
import { Type } from "@sinclair/typebox";
import { Elysia } from "elysia";
import { Counter, type Registry } from "prom-client";
import { AmqpUrl, LinkSigningKey, LogLevel, MetricsPort, MongoUrl, Port, PublicUrl, Url } from "./lib/config.ts";
import { health, startupCheck } from "./lib/health.ts";
import { jobStore } from "./lib/jobs.ts";
import { AllowHosts, parseAllowList, type Resolver } from "./lib/link.ts";
import type { Logger } from "./lib/log.ts";
import type { Mp3Message } from "./lib/messages.ts";
import { createMetrics } from "./lib/metrics.ts";
import { connectMongo, type Mongo, retryAfterMongo } from "./lib/mongo.ts";
import { problems } from "./lib/problem.ts";
import { CONNECT_IN_BACKGROUND, connectQueue, type Delivery, QUEUES, type Queue } from "./lib/queue.ts";
import { runService } from "./lib/runner.ts";
import { linkSigner, linkSigningKey } from "./lib/signed-links.ts";
import { parseRetrySchedule, RetrySchedule, webhookStore } from "./lib/webhooks.ts";
import { accountEmailExhausted, sendAccountEmail } from "./notifier/account-emails.ts";
import { mailer } from "./notifier/mailer.ts";
import { exhausted, type NotifierContext, notify } from "./notifier/notify.ts";
import { webhookSender } from "./notifier/webhooks.ts";

// ── config ──────────────────────────────────────────────────────────────────
export const NotifierConfig = Type.Object({
  PORT: Port(3003),
  METRICS_PORT: MetricsPort(9104),
  LOG_LEVEL: LogLevel,
  MONGODB_URL: MongoUrl,
  AMQP_URL: AmqpUrl,
  RESEND_API_KEY: Type.Optional(Type.String({ description: "Resend API key; unset = log emails instead of sending" })),
  RESEND_BASE_URL: Url(["http", "https"], "https://api.resend.com", "the Resend API's http(s):// base URL"),
  MAIL_FROM: Type.String({ minLength: 3, default: "m3dio <onboarding@resend.dev>", description: "the sender" }),
  PUBLIC_URL: PublicUrl,
  LINK_SIGNING_KEY: LinkSigningKey,
  MAX_ATTEMPTS: Type.Integer({ minimum: 1, maximum: 20, default: 5, description: "sends tried before dead-lettering" }),
  RETRY_BASE_MS: Type.Integer({ minimum: 0, default: 2000, description: "first retry delay; doubles each time" }),
  SEND_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 10_000, description: "how long one send may take" }),
  WEBHOOK_TIMEOUT_MS: Type.Integer({
    minimum: 100,
    maximum: 15_000,
    default: 10_000,
    description: "how long one webhook try may take before it counts as failed",
  }),
  WEBHOOK_RETRY_SCHEDULE_MS: RetrySchedule,
  URL_ALLOW_HOSTS: AllowHosts,
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
  /** Replaces DNS for webhook URLs (tests). */
  resolve?: Resolver;
}

export function createNotifier({ config, log, mongo, queue, resolve }: NotifierDeps) {
  const jobs = jobStore(mongo.db);
  const metrics = createMetrics("notifier");
  const emails = emailsCounter(metrics.registry);
  const mail = mailer({
    apiKey: config.RESEND_API_KEY,
    baseUrl: config.RESEND_BASE_URL,
    timeoutMs: config.SEND_TIMEOUT_MS,
    log,
  });
  const stopping = new AbortController();
  const links = linkSigner(linkSigningKey(config.LINK_SIGNING_KEY, log));
  const context: NotifierContext = { config, log, jobs, mail, links, emails, stopping: stopping.signal };
  const webhooks = webhookStore(mongo.db);
  const sender = webhookSender({
    store: webhooks,
    jobs,
    log,
    registry: metrics.registry,
    allow: parseAllowList(config.URL_ALLOW_HOSTS),
    timeoutMs: config.WEBHOOK_TIMEOUT_MS,
    schedule: parseRetrySchedule(config.WEBHOOK_RETRY_SCHEDULE_MS),
    resolve,
  });
  const startup = startupCheck();

  const app = new Elysia({ name: "notifier" })
    .use(problems(log))
    .use(metrics.plugin)
    .use(health({ startup: startup.check, mongodb: () => mongo.ping(), rabbitmq: () => queue.ping() }));

  return {
    app,
    metricsApp: metrics.app,
    start: () =>
      startup.run(async () => {
        if (!mail.sends)
          log.warn(
            { event: "email.not_configured" },
            "RESEND_API_KEY is not set: emails are written to the log instead of sent",
          );
        await webhooks.ensureIndexes();
        sender.start();
        await consumeQueues({ config, log, mongo, queue }, context, sender);
      }),
    /**
     * Stops taking messages; the ones in hand finish, or go back at once if they were waiting to retry.
     * Webhook tries under way finish too; waiting deliveries stay in MongoDB for the next notifier.
     */
    async stop() {
      stopping.abort();
      await queue.stopConsuming();
      while (queue.inFlight() > 0) await Bun.sleep(50);
      await sender.stop();
    },
  };
}

/** notifier_emails_total{outcome}: every email's end, sent or not. */
function emailsCounter(registry: Registry) {
  return new Counter({
    name: "notifier_emails_total",
    help: "emails, by outcome",
    labelNames: ["outcome"] as const,
    registers: [registry],
  });
}

/** `mp3`: the email, then the webhooks; `email`: auth's account emails. Both done once, however often a message comes. */
async function consumeQueues(
  { config, log, mongo, queue }: Omit<NotifierDeps, "resolve">,
  context: NotifierContext,
  sender: ReturnType<typeof webhookSender>,
): Promise<void> {
  const announce = async (delivery: Delivery<Mp3Message>) => {
    await notify(context, delivery); // the email first: a webhook's trouble never holds it up
    await sender.announce(delivery.body);
  };
  await queue.consume(
    QUEUES.mp3,
    { prefetch: 8, maxAttempts: config.MAX_ATTEMPTS, onExhausted: (body) => exhausted(context, body) },
    retryAfterMongo(mongo, log, announce, { giveUp: () => context.stopping.aborted }),
  );
  // Account emails (notifier/account-emails.ts): they need no store but Resend.
  await queue.consume(
    QUEUES.email,
    { prefetch: 8, maxAttempts: config.MAX_ATTEMPTS, onExhausted: (body) => accountEmailExhausted(context, body) },
    (delivery) => sendAccountEmail(context, delivery),
  );
}

// ── start and graceful stop ─────────────────────────────────────────────────
if (import.meta.main) {
  await runService(
    "notifier",
    NotifierConfig,
    async (config, log) => {
      // Neither waits for its store: start() is retried until they answer (lib/runner.ts).
      const mongo = await connectMongo(config.MONGODB_URL, { appName: "notifier", waitForConnect: false });
      const queue = await connectQueue(config.AMQP_URL, log, CONNECT_IN_BACKGROUND);
      return { service: createNotifier({ config, log, mongo, queue }), resources: [mongo, queue] };
    },
    // A send or webhook try in progress may take its timeout; retry waits end at once. Within k3d's 30 s.
    (config) => ({
      httpGraceMs: 1000,
      deadlineMs: Math.min(Math.max(config.SEND_TIMEOUT_MS, config.WEBHOOK_TIMEOUT_MS) + 10_000, 28_000),
    }),
  );
}
