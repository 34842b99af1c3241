// The notifier against a local Resend stand-in (through the SDK's base-URL
// override), real RabbitMQ (a vhost of its own) and MongoDB (MONGODB_URL or the stand-in).
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import amqp from "amqplib";
import { ObjectId } from "mongodb";
import { parseConfig } from "../lib/config.ts";
import { jobStore } from "../lib/jobs.ts";
import { createLogger } from "../lib/log.ts";
import { emailTokenId } from "../lib/messages.ts";
import { connectMongo, type Mongo } from "../lib/mongo.ts";
import { connectQueue, QUEUES, type Queue } from "../lib/queue.ts";
import { createNotifier, NotifierConfig } from "../notifier.ts";
import { dropTestDatabase, testMongoUrl } from "./support/mongo.ts";
import { createTestVhost } from "./support/rabbit.ts";
import { startResendStandin } from "./support/resend.ts";

const log = createLogger("notifier-test", "silent");
let mongo: Mongo;
let mongoUrl: string;
let vhost: Awaited<ReturnType<typeof createTestVhost>>;
let publisher: Queue;
let consumerQueue: Queue;
let jobs: ReturnType<typeof jobStore>;
const resend = startResendStandin();
let notifier: ReturnType<typeof createNotifier>;
const notifierLines: string[] = [];
const notifierLog = { write: (line: string) => void notifierLines.push(line) };
/** The events the notifier logged for a job, in order. */
const eventsOf = (id: ObjectId) =>
  notifierLines
    .map((line) => JSON.parse(line) as { event?: string; jobId?: string })
    .filter((entry) => entry.jobId === id.toHexString())
    .map((entry) => entry.event);

beforeAll(async () => {
  mongoUrl = await testMongoUrl();
  mongo = await connectMongo(mongoUrl);
  vhost = await createTestVhost();
  publisher = await connectQueue(vhost.url, log);
  consumerQueue = await connectQueue(vhost.url, log);
  jobs = jobStore(mongo.db);
  const config = parseConfig(NotifierConfig, {
    MONGODB_URL: mongoUrl,
    AMQP_URL: vhost.url,
    RESEND_API_KEY: "re_test_key",
    RESEND_BASE_URL: resend.url,
    MAIL_FROM: "m3dio <mp3@example.com>",
    PUBLIC_URL: "https://m3dio.example",
    MAX_ATTEMPTS: "3",
    RETRY_BASE_MS: "20",
  });
  // The notifier's own log lines are kept: tests wait on their events.
  notifier = createNotifier({
    config,
    log: createLogger("notifier", "info", notifierLog),
    mongo,
    queue: consumerQueue,
  });
  await notifier.start();
});
afterAll(async () => {
  await notifier?.stop();
  await consumerQueue?.close();
  await publisher?.close();
  await vhost?.drop();
  await mongo?.close();
  if (mongoUrl) await dropTestDatabase(mongoUrl);
  resend.stop();
});
beforeEach(() => resend.reset());

/** A finished job as the converter leaves it, announced on `mp3`. */
async function finishedJob(
  status: "done" | "failed",
  filename = "Tom & Jerry <b>live<b>.mp4",
  email = "ada@example.com",
) {
  const job = await jobs.create({
    userId: "7",
    email,
    source: { kind: "upload", filename, bytes: 1234, contentType: "video/mp4" },
  });
  await jobs.startConverting(job._id);
  if (status === "done") await jobs.markDone(job._id, new ObjectId(), { bytes: 3 * 1024 * 1024, durationSec: 125.4 });
  else await jobs.markFailed(job._id, "the video has no audio track");
  return job._id;
}
const announce = (id: ObjectId, status: "done" | "failed") =>
  publisher.publish(QUEUES.mp3, { jobId: id.toHexString(), status }, { messageId: `${id}-${status}` });

async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await Bun.sleep(25);
  }
}
const notified = async (id: ObjectId) => Boolean((await jobs.get(id))?.notifiedAt);

/**
 * A notifier besides the suite's own (a test stops that one first, so this one alone consumes), configured
 * by `env` over the store URLs, with a queue connection of its own and its log lines kept; `stop()` stops both.
 */
async function notifierOfItsOwn(env: Record<string, string>) {
  const lines: string[] = [];
  const queue = await connectQueue(vhost.url, log);
  const notifier = createNotifier({
    config: parseConfig(NotifierConfig, { MONGODB_URL: mongoUrl, AMQP_URL: vhost.url, ...env }),
    log: createLogger("notifier", "info", { write: (line: string) => void lines.push(line) }),
    mongo,
    queue,
  });
  return {
    notifier,
    lines,
    async stop() {
      await notifier.stop();
      await queue.close();
    },
  };
}

describe("emails", () => {
  test("a done job: the owner gets the link, file id, name, length and size, with the file name escaped", async () => {
    const id = await finishedJob("done");
    await announce(id, "done");
    await until(() => notified(id));
    expect(resend.received).toHaveLength(1);
    const [email] = resend.received;
    const job = (await jobs.get(id))!;
    expect(email!.to).toEqual("ada@example.com");
    expect(email!.from).toBe("m3dio <mp3@example.com>");
    expect(email!.subject).toBe("Your MP3 is ready"); // fixed text: the name is only in the body
    expect(email!.authorization).toBe("Bearer re_test_key");
    expect(email!.idempotencyKey).toBe(`job-${id}-done`);
    // The download link is signed (test/links.test.ts follows it); the page's view of the job beside it.
    const link = `https://m3dio.example/jobs/${id}/audio?expires=`;
    expect(email!.text).toContain(link);
    expect(email!.text).toContain(`https://m3dio.example/#/jobs/${id}`);
    expect(email!.text).toContain(job.audioFileId!.toHexString());
    expect(email!.text).toContain("2:05");
    expect(email!.text).toContain("3 MiB");
    expect(email!.html).toContain(`href="${link}`);
    expect(email!.html).toContain("Tom &amp; Jerry &lt;b&gt;live&lt;b&gt;.mp4");
    expect(email!.html).not.toContain("<b>live");
  });

  test("a failed job: the reason in words, and what to try", async () => {
    const id = await finishedJob("failed", "silent.mp4");
    await announce(id, "failed");
    await until(() => notified(id));
    const [email] = resend.received;
    expect(email!.subject).toBe("Your MP3 could not be made");
    expect(email!.text).toContain('"silent.mp4"');
    expect(email!.text).toContain("the video has no audio track");
    expect(email!.text).toContain("upload it again");
    expect(email!.idempotencyKey).toBe(`job-${id}-failed`);
  });

  test("a retried job's new outcome is emailed too, under a key of its own, saying until when the MP3 is kept", async () => {
    const id = await finishedJob("failed", "talk.mp4");
    await announce(id, "failed");
    await until(() => notified(id));
    // Its owner retries it (POST /jobs/:id/retry) and this time it converts.
    await jobs.retry((await jobs.get(id))!);
    await jobs.startConverting(id);
    const done = (await jobs.markDone(id, new ObjectId(), { bytes: 1024, durationSec: 3 }))!;
    await announce(id, "done");
    await until(() => notified(id));
    expect(resend.received.map((email) => email.idempotencyKey)).toEqual([`job-${id}-failed`, `job-${id}-done-retry1`]);
    expect(resend.received[1]!.text).toContain(`The MP3 is kept until ${done.expiresAt!.toUTCString()}.`);
  });

  test("a file named like a phishing lure cannot choose the subject; in the body it is cleaned and escaped", async () => {
    const lure = "URGENT\u202E: your bank account is locked, log in at evil.example <a href=x>now<b>.mp4";
    const id = await finishedJob("done", lure, "ceo@victim.example");
    await announce(id, "done");
    await until(() => notified(id));
    const [email] = resend.received;
    expect(email!.subject).toBe("Your MP3 is ready");
    expect(email!.text).toContain("URGENT: your bank account is locked");
    expect(email!.text).not.toContain("\u202E");
    expect(email!.html).not.toContain("<a href=x>");
    expect(email!.html).toContain("&lt;a href=x&gt;now");
  });

  test("a redelivered message sends nothing twice", async () => {
    const id = await finishedJob("done");
    await announce(id, "done");
    await until(() => notified(id));
    await announce(id, "done");
    await announce(id, "done");
    // Both redeliveries handled: each found the job notified.
    await until(() => eventsOf(id).filter((event) => event === "email.duplicate").length === 2);
    expect(resend.received).toHaveLength(1);
  });

  test("Resend answering 500 twice, then success: one email delivered, with the same idempotency key each time", async () => {
    resend.answer([500, 503]);
    const id = await finishedJob("done");
    await announce(id, "done");
    await until(() => notified(id));
    expect(resend.received).toHaveLength(3);
    expect(new Set(resend.received.map((email) => email.idempotencyKey))).toEqual(new Set([`job-${id}-done`]));
    expect(resend.delivered()).toBe(1);
  });

  test("an account email Resend answers 503 once is sent on the retry, under the same idempotency key", async () => {
    resend.answer([503]);
    const token = "r".repeat(43);
    const tokenId = emailTokenId(token);
    const message = { kind: "reset" as const, to: "ada@example.com", token, userId: "7" };
    await publisher.publish(QUEUES.email, message, { messageId: `reset-7-${tokenId}` });
    const eventsOfToken = () =>
      notifierLines
        .map((line) => JSON.parse(line) as { event?: string; tokenId?: string })
        .filter((entry) => entry.tokenId === tokenId)
        .map((entry) => entry.event);
    await until(() => eventsOfToken().includes("email.sent"));
    expect(eventsOfToken()).toEqual(["email.retry", "email.sent"]);
    const key = `email-reset-${tokenId}`;
    expect(resend.received.map((email) => email.idempotencyKey)).toEqual([key, key]);
    expect(resend.received[1]!.text).toContain(`https://m3dio.example/reset?token=${token}`);
    expect(resend.delivered("email-")).toBe(1);
  });

  test("Resend failing forever: tried MAX_ATTEMPTS times, then dead-lettered, the job not marked notified", async () => {
    resend.failAlways(500);
    const id = await finishedJob("done");
    await announce(id, "done");
    const connection = await amqp.connect(vhost.url);
    const channel = await connection.createChannel();
    let dead: amqp.GetMessage | false = false;
    await until(async () => {
      dead = await channel.get(`${QUEUES.mp3}.dead`, { noAck: true });
      return dead !== false;
    });
    await connection.close();
    expect(JSON.parse((dead as unknown as amqp.GetMessage).content.toString())).toEqual({
      jobId: id.toHexString(),
      status: "done",
    });
    expect(resend.received).toHaveLength(3);
    expect(await notified(id)).toBe(false);
  });

  test("an invalid recipient (422) is recorded on the job and not retried", async () => {
    resend.failAlways(422);
    const id = await finishedJob("done", "clip.mp4", "not-deliverable");
    await announce(id, "done");
    await until(() => notified(id));
    const job = (await jobs.get(id))!;
    expect(job.notifyError).toContain("422");
    // Handled to the end (the refusal is logged once it is recorded, before the ack): refused, never retried.
    await until(() => eventsOf(id).includes("email.refused"));
    expect(eventsOf(id)).not.toContain("email.retry");
    expect(resend.received).toHaveLength(1);
  });
});

describe("stopping", () => {
  test("a message waiting out a long retry delay goes back to the queue at once, not sent, not marked", async () => {
    await notifier.stop(); // only the notifier below consumes now
    resend.failAlways(500);
    const patient = await notifierOfItsOwn({
      RESEND_API_KEY: "re_test_key",
      RESEND_BASE_URL: resend.url,
      RETRY_BASE_MS: "600000", // ten minutes: stop() must not wait for it
    });
    await patient.notifier.start();
    const id = await finishedJob("done", "patience.mp4");
    await announce(id, "done");
    await until(() => patient.lines.some((line) => (JSON.parse(line) as { event?: string }).event === "email.retry"));
    await patient.stop();
    expect(await notified(id)).toBe(false);
    expect(resend.received).toHaveLength(1);
    const connection = await amqp.connect(vhost.url);
    const channel = await connection.createChannel();
    const back = await channel.get(QUEUES.mp3, { noAck: true });
    await connection.close();
    expect(back && JSON.parse(back.content.toString())).toEqual({ jobId: id.toHexString(), status: "done" });
  });
});

describe("without RESEND_API_KEY", () => {
  test("the email is one JSON log line, the job is marked notified, and startup warns", async () => {
    const keyless = await notifierOfItsOwn({ PUBLIC_URL: "https://m3dio.example" });
    await notifier.stop(); // only the keyless notifier consumes now
    await keyless.notifier.start();
    try {
      const id = await finishedJob("done", "talk.mp4", "grace@example.com");
      await announce(id, "done");
      await until(() => notified(id));
      const records = keyless.lines.map(
        (line) =>
          JSON.parse(line) as {
            level: string;
            service: string;
            event?: string;
            email?: { to: string; subject: string; text: string };
          },
      );
      expect(records.some((record) => record.level === "warn" && record.event === "email.not_configured")).toBe(true);
      const emailLine = records.find((record) => record.email);
      expect(emailLine).toMatchObject({
        service: "notifier",
        level: "info",
        email: { to: "grace@example.com", subject: "Your MP3 is ready" },
      });
      expect(emailLine!.email!.text).toContain(`https://m3dio.example/jobs/${id}/audio`);
      expect(resend.received).toHaveLength(0);
    } finally {
      await keyless.stop();
    }
  });
});

describe("health and metrics", () => {
  test("ready reports MongoDB and RabbitMQ; metrics count emails by outcome", async () => {
    const ready = await notifier.app.handle(new Request("http://notifier/health/ready"));
    expect(await ready.json()).toEqual({ status: "ready", checks: { startup: "up", mongodb: "up", rabbitmq: "up" } });
    const text = await (await notifier.metricsApp.handle(new Request("http://notifier/metrics"))).text();
    expect(text).toMatch(/notifier_emails_total\{[^}]*outcome="sent"[^}]*\} [1-9]/);
    expect(text).toMatch(/notifier_emails_total\{[^}]*outcome="dead_lettered"[^}]*\} 1/);
    expect(text).toMatch(/notifier_emails_total\{[^}]*outcome="refused"[^}]*\} 1/);
  });
});
