// notifier: consumes `mp3` and emails the job's owner through Resend, once:
// the idempotency key `job-<id>-<status>` and the job's `notifiedAt` make a
// redelivered message send nothing twice. Resend being away is retried with
// backoff and then dead-lettered; a refusal retrying cannot fix is recorded.
import { Type } from "@sinclair/typebox";
import { Elysia } from "elysia";
import escapeHtml from "escape-html";
import { Counter } from "prom-client";
import { Resend } from "resend";
import { LogLevel, loadConfig, Port, Url } from "./lib/config.ts";
import { mp3Filename } from "./lib/files.ts";
import { health } from "./lib/health.ts";
import { type Job, jobStore, parseJobId } from "./lib/jobs.ts";
import { createLogger, type Logger } from "./lib/log.ts";
import { createMetrics } from "./lib/metrics.ts";
import { connectMongo, isMongoUnavailable, type Mongo, retryAfterMongo } from "./lib/mongo.ts";
import { problems } from "./lib/problem.ts";
import { connectQueue, type Delivery, QUEUES, type Queue } from "./lib/queue.ts";
import { stopServing } from "./lib/shutdown.ts";
import { formatBytes } from "./lib/upload.ts";

// ── config ──────────────────────────────────────────────────────────────────
export const NotifierConfig = Type.Object({
  PORT: Port(3003),
  LOG_LEVEL: LogLevel,
  MONGODB_URL: Url(["mongodb", "mongodb\\+srv"], "mongodb://127.0.0.1:27017/m3dio", "a mongodb:// URL"),
  AMQP_URL: Url(["amqp", "amqps"], "amqp://guest:guest@127.0.0.1:5672", "an amqp:// URL"),
  RESEND_API_KEY: Type.Optional(Type.String({ description: "Resend API key; unset = log emails instead of sending" })),
  RESEND_BASE_URL: Url(["http", "https"], "https://api.resend.com", "the Resend API's http(s):// base URL"),
  MAIL_FROM: Type.String({ minLength: 3, default: "m3dio <onboarding@resend.dev>", description: "the sender" }),
  PUBLIC_URL: Url(["http", "https"], "http://localhost:8080", "the gateway's public http(s):// address"),
  MAX_ATTEMPTS: Type.Integer({ minimum: 1, maximum: 20, default: 5, description: "sends tried before dead-lettering" }),
  RETRY_BASE_MS: Type.Integer({ minimum: 0, default: 2000, description: "first retry delay; doubles each time" }),
  SEND_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 10_000, description: "how long one send may take" }),
});
export type NotifierConfig = typeof NotifierConfig.static;

// ── models ──────────────────────────────────────────────────────────────────
export interface Mp3Message {
  jobId: string;
  status: "done" | "failed";
}

export interface Email {
  from: string;
  to: string;
  subject: string;
  html: string;
  text: string;
}

// ── errors ──────────────────────────────────────────────────────────────────
/** Resend is away or overloaded: worth another try later. */
class SendUnavailable extends Error {
  override name = "SendUnavailable";
}
/** Resend refused the email for a reason retrying cannot fix (bad recipient, ...). */
class SendRefused extends Error {
  override name = "SendRefused";
}

// ── the email ───────────────────────────────────────────────────────────────
export function composeEmail(job: Job, config: Pick<NotifierConfig, "MAIL_FROM" | "PUBLIC_URL">): Email {
  const name = job.source.filename;
  const mp3Name = mp3Filename(name);
  const base = { from: config.MAIL_FROM, to: job.email };
  if (job.status === "done" && job.audio && job.audioFileId) {
    const link = `${config.PUBLIC_URL.replace(/\/$/, "")}/jobs/${job._id}/audio`;
    const facts = [
      ["File", mp3Name],
      ["Length", formatDuration(job.audio.durationSec)],
      ["Size", formatBytes(job.audio.bytes)],
      ["MP3 file id", job.audioFileId.toHexString()],
    ];
    return {
      ...base,
      subject: `Your MP3 is ready: ${mp3Name}`,
      text: [
        `Your MP3 of "${name}" is ready.`,
        "",
        `Download or play it: ${link}`,
        "",
        ...facts.map(([k, v]) => `${k}: ${v}`),
        "",
        "— m3dio",
      ].join("\n"),
      html: page(
        `<p>Your MP3 of <strong>${escapeHtml(name)}</strong> is ready.</p>
<p><a href="${escapeHtml(link)}">Download or play it</a></p>
<table>${facts.map(([k, v]) => `<tr><th align="left">${k}</th><td>${escapeHtml(v!)}</td></tr>`).join("")}</table>`,
      ),
    };
  }
  const reason = job.error ?? "the conversion did not finish";
  const advice = /attempts/.test(reason)
    ? "This was on our side: please upload the video again in a little while."
    : "Please check that the file plays and has sound, or export it again (MP4 with AAC audio works everywhere), then upload it again.";
  return {
    ...base,
    subject: `We could not convert ${name}`,
    text: [`We could not turn "${name}" into an MP3: ${reason}.`, "", advice, "", "— m3dio"].join("\n"),
    html: page(
      `<p>We could not turn <strong>${escapeHtml(name)}</strong> into an MP3: ${escapeHtml(reason)}.</p>\n<p>${escapeHtml(advice)}</p>`,
    ),
  };
}

function page(body: string): string {
  return `<!doctype html><html><body style="font-family: sans-serif">${body}<p>— m3dio</p></body></html>`;
}

function formatDuration(seconds: number): string {
  const total = Math.round(seconds);
  return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, "0")}`;
}

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
  const resend = config.RESEND_API_KEY
    ? new Resend(config.RESEND_API_KEY, { baseUrl: config.RESEND_BASE_URL })
    : undefined;

  async function send(email: Email, idempotencyKey: string): Promise<string | undefined> {
    if (!resend) {
      log.info({ event: "email", idempotencyKey, email }, "RESEND_API_KEY unset: email logged instead of sent");
      return undefined;
    }
    const { data, error } = await resend.emails.send(email, {
      idempotencyKey,
      signal: AbortSignal.timeout(config.SEND_TIMEOUT_MS),
    } as never);
    if (!error) return data?.id;
    const status = (error as { statusCode?: number | null }).statusCode ?? null;
    if (status === null || status === 429 || status >= 500)
      throw new SendUnavailable(`Resend answered ${status ?? "nothing"}: ${error.message}`);
    throw new SendRefused(`Resend refused the email (${status} ${error.name}): ${error.message}`);
  }

  let stopping = false;

  /** Failures a retry may fix are thrown to the queue, which retries them (counted). */
  async function handle(delivery: Delivery<Mp3Message>): Promise<void> {
    const jobId = typeof delivery.body?.jobId === "string" ? parseJobId(delivery.body.jobId) : null;
    if (!jobId) {
      log.warn({ messageId: delivery.messageId }, "mp3 message without a valid jobId; dead-lettered");
      return delivery.deadLetter();
    }
    const job = await jobs.get(jobId);
    const jobLog = log.child({ jobId: jobId.toHexString(), ...(job ? { userId: job.userId } : {}) });
    if (!job) {
      jobLog.info("job no longer exists; nothing to tell");
      return delivery.ack();
    }
    if (job.notifiedAt) {
      jobLog.info("already notified; redelivery ignored");
      return delivery.ack();
    }
    if (job.status !== "done" && job.status !== "failed") {
      jobLog.warn({ status: job.status }, "job not finished; nothing to tell yet");
      return delivery.ack();
    }
    try {
      const emailId = await send(composeEmail(job, config), `job-${job._id}-${job.status}`);
      await jobs.markNotified(job._id);
      emails.inc({ outcome: resend ? "sent" : "logged" });
      jobLog.info({ emailId, status: job.status }, resend ? "email sent" : "email logged");
      return delivery.ack();
    } catch (error) {
      if (isMongoUnavailable(error)) throw error; // sent, not recorded: retryAfterMongo waits for MongoDB; the retry's send is deduplicated by its key
      if (error instanceof SendRefused) {
        await jobs.markNotified(job._id, error.message);
        emails.inc({ outcome: "refused" });
        jobLog.error({ reason: error.message }, "email refused; recorded on the job");
        return delivery.ack();
      }
      if (delivery.attempt < delivery.maxAttempts) {
        const delay = config.RETRY_BASE_MS * 2 ** (delivery.attempt - 1);
        emails.inc({ outcome: "retried" });
        jobLog.warn({ err: error, attempt: delivery.attempt, retryInMs: delay }, "email not sent; will retry");
        await Bun.sleep(delay);
      }
      return delivery.retry(error); // on the last attempt this dead-letters and calls exhausted()
    }
  }

  /** Resend stayed away through every attempt: the message goes to `mp3.dead`, logged with its job. */
  function exhausted(body: Mp3Message) {
    emails.inc({ outcome: "dead_lettered" });
    log.error(
      { jobId: body?.jobId, attempts: config.MAX_ATTEMPTS },
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
      if (!resend) log.warn("RESEND_API_KEY is not set: emails are written to the log instead of sent");
      await queue.consume(
        QUEUES.mp3,
        { prefetch: 8, maxAttempts: config.MAX_ATTEMPTS, onExhausted: exhausted },
        retryAfterMongo(mongo, log, handle, { giveUp: () => stopping }),
      );
    },
    async stop() {
      stopping = true;
      await queue.stopConsuming();
      while (queue.inFlight() > 0) await Bun.sleep(50);
    },
  };
}

// ── start and graceful stop ─────────────────────────────────────────────────
if (import.meta.main) {
  const config = loadConfig(NotifierConfig);
  const log = createLogger("notifier", config.LOG_LEVEL);
  const mongo = await connectMongo(config.MONGODB_URL, { appName: "notifier" });
  const queue = await connectQueue(config.AMQP_URL, log);
  const notifier = createNotifier({ config, log, mongo, queue });
  await notifier.start();
  notifier.app.listen({ port: config.PORT, hostname: "0.0.0.0" });
  log.info({ port: notifier.app.server?.port }, "notifier consuming");
  const stop = async (signal: string) => {
    log.info({ signal }, "stopping");
    await notifier.stop();
    await queue.close();
    await mongo.close();
    await stopServing(notifier.app, { log, graceMs: 1000 }); // health and metrics only
    process.exit(0);
  };
  process.once("SIGTERM", () => void stop("SIGTERM"));
  process.once("SIGINT", () => void stop("SIGINT"));
}
