// The converter with real ffmpeg, real RabbitMQ (a vhost of its own) and MongoDB
// (MONGODB_URL or the stand-in): in-process for the outcomes, as real processes
// for kills and SIGTERM.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { createReadStream, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import type { ObjectId } from "mongodb";
import { ConverterConfig, createConverter } from "../converter.ts";
import { parseConfig } from "../lib/config.ts";
import { fileStore } from "../lib/files.ts";
import { type Job, jobStore } from "../lib/jobs.ts";
import { createLogger } from "../lib/log.ts";
import { connectMongo, type Mongo } from "../lib/mongo.ts";
import { connectQueue, QUEUES, type Queue } from "../lib/queue.ts";
import { drainQueue, settle, waitForJob as waitForFinished } from "./support/jobs.ts";
import { makeVideo, probe } from "./support/media.ts";
import { dropTestDatabase, testMongoUrl } from "./support/mongo.ts";
import { createTestVhost } from "./support/rabbit.ts";

const log = createLogger("converter-test", "silent");
let mongo: Mongo;
let mongoUrl: string;
let vhost: Awaited<ReturnType<typeof createTestVhost>>;
let queue: Queue;
let files: ReturnType<typeof fileStore>;
let jobs: ReturnType<typeof jobStore>;
const tmp = mkdtempSync(join(tmpdir(), "m3dio-converter-test-"));

beforeAll(async () => {
  mongoUrl = await testMongoUrl();
  mongo = await connectMongo(mongoUrl);
  vhost = await createTestVhost();
  queue = await connectQueue(vhost.url, log);
  files = fileStore(mongo.db);
  jobs = jobStore(mongo.db);
});
afterAll(async () => {
  await queue?.close();
  await vhost?.drop();
  await mongo?.close();
  if (mongoUrl) await dropTestDatabase(mongoUrl);
});
afterEach(async () => {
  // Every temp directory is gone, whatever happened (the worker removes it last, after the job reads done).
  expect(
    await settle(
      async () => readdirSync(tmp),
      (left) => left.length === 0,
    ),
  ).toEqual([]);
});

/** A converter with a queue connection of its own; `stop()` stops both. */
async function startConverter(overrides: Record<string, string> = {}) {
  const ownQueue = await connectQueue(vhost.url, log);
  const config = parseConfig(ConverterConfig, {
    MONGODB_URL: mongoUrl,
    AMQP_URL: vhost.url,
    TMP_DIR: tmp,
    LOG_LEVEL: "silent",
    SHUTDOWN_GRACE_MS: "5000",
    ...overrides,
  });
  const converter = createConverter({ config, log, mongo, queue: ownQueue });
  await converter.start();
  return {
    async stop() {
      await converter.stop();
      await ownQueue.close();
    },
  };
}

/** A job as the gateway leaves it: video in GridFS, record queued, message published. */
async function queueJob(source: string | Buffer, filename = "clip.mp4"): Promise<ObjectId> {
  const stream = typeof source === "string" ? createReadStream(source) : Readable.from([source]);
  const stored = await files.upload("videos", stream, { owner: "42", filename, contentType: "video/mp4" });
  const job = await jobs.create({
    userId: "42",
    email: "owner@example.com",
    videoFileId: stored.id,
    source: { kind: "upload", filename, bytes: stored.bytes, contentType: "video/mp4" },
  });
  await queue.publish(QUEUES.video, { jobId: job._id.toHexString() }, { messageId: job._id.toHexString() });
  return job._id;
}

const waitForJob = (id: ObjectId, statuses?: Job["status"][], timeoutMs?: number) =>
  waitForFinished(jobs, id, statuses, timeoutMs);
/** The `mp3` queue's messages: the announcements the notifier would get. */
const takeMp3Messages = (expected = 0) => drainQueue(vhost.url, QUEUES.mp3, expected);

async function downloadMp3(job: Job): Promise<string> {
  const path = join(mkdtempSync(join(tmpdir(), "m3dio-mp3-")), "out.mp3");
  await Bun.write(
    path,
    new Response(Readable.toWeb(files.download("mp3s", job.audioFileId!)) as unknown as ReadableStream),
  );
  return path;
}

describe("in-process conversions", () => {
  let converter: Awaited<ReturnType<typeof startConverter>>;
  beforeAll(async () => {
    converter = await startConverter();
  });
  afterAll(() => converter?.stop());

  const good = [
    ["MP4 with the index at the end", { format: "mp4" }],
    ["MP4 with +faststart", { format: "mp4", faststart: true }],
    ["MKV", { format: "mkv" }],
    ["WebM", { format: "webm" }],
    ["MOV", { format: "mov" }],
  ] as const;

  for (const [name, options] of good) {
    test(`${name} becomes an MP3 that plays for the source's duration`, async () => {
      const video = await makeVideo({ seconds: 3, ...options });
      const id = await queueJob(video, `clip.${options.format}`);
      const job = await waitForJob(id);
      expect(job.error).toBeUndefined();
      expect(job.status).toBe("done");
      expect(job.progress).toBe(100);
      const mp3 = await probe(await downloadMp3(job));
      expect(mp3.format).toBe("mp3");
      expect(mp3.streams).toEqual(["audio:mp3"]);
      expect(Math.abs(mp3.durationSec - 3)).toBeLessThan(0.3);
      expect(job.audio?.durationSec).toBeCloseTo(mp3.durationSec, 0);
      expect(job.audio?.bytes).toBe((await files.stat("mp3s", job.audioFileId!))!.length);
      expect(
        await settle(
          () => files.stat("videos", job.videoFileId!),
          (file) => file === null,
        ),
      ).toBeNull(); // KEEP_VIDEOS=false
      expect(await takeMp3Messages(1)).toEqual([{ jobId: id.toHexString(), status: "done" }]);
    });
  }

  test("a video whose audio starts late becomes an MP3 as long as the audio, not the video", async () => {
    const video = await makeVideo({ seconds: 9, audioStartSec: 3 });
    const source = await probe(video);
    expect(source.streams).toContain("audio:aac");
    const id = await queueJob(video, "late-audio.mp4");
    const job = await waitForJob(id);
    expect(job.error).toBeUndefined();
    expect(job.status).toBe("done");
    const mp3 = await probe(await downloadMp3(job));
    expect(Math.abs(mp3.durationSec - 6)).toBeLessThan(0.3);
    expect(job.audio?.durationSec).toBeCloseTo(mp3.durationSec, 0);
    await takeMp3Messages(1);
  });

  const bad: [string, () => Promise<string | Buffer>, string][] = [
    ["a video without audio", () => makeVideo({ audio: false }), "the video has no audio track"],
    ["a zero-byte file", async () => Buffer.alloc(0), "the file is empty"],
    ["a text file", async () => Buffer.from("this is not a video\n".repeat(100)), "not a video we can read"],
    [
      "a truncated MP4 (index at the end, cut off)",
      async () => {
        const whole = Buffer.from(await Bun.file(await makeVideo({ seconds: 3 })).arrayBuffer());
        return whole.subarray(0, Math.floor(whole.length / 2));
      },
      "not a video we can read",
    ],
  ];

  for (const [name, make, reason] of bad) {
    test(`${name} fails the job once with "${reason}" and tells the user`, async () => {
      const id = await queueJob(await make());
      const job = await waitForJob(id);
      expect(job.status).toBe("failed");
      expect(job.error).toContain(reason);
      expect(job.attempts).toBe(1);
      expect(job.audioFileId).toBeUndefined();
      expect(await takeMp3Messages(1)).toEqual([{ jobId: id.toHexString(), status: "failed" }]);
      expect(await mongo.db.collection("mp3s.files").countDocuments({ "metadata.jobId": id.toHexString() })).toBe(0);
    });
  }

  test("a truncated MKV (header promises more than there is) fails as damaged", async () => {
    const whole = Buffer.from(await Bun.file(await makeVideo({ seconds: 6, format: "mkv" })).arrayBuffer());
    const id = await queueJob(whole.subarray(0, Math.floor(whole.length / 3)), "cut.mkv");
    const job = await waitForJob(id);
    expect(job.status).toBe("failed");
    expect(job.error).toMatch(/damaged|cannot read|can read/);
    await takeMp3Messages(1);
  });

  test("a redelivered message for a done job converts nothing and announces only if never notified", async () => {
    const id = await queueJob(await makeVideo({ seconds: 1 }));
    const done = await waitForJob(id);
    expect(await takeMp3Messages(1)).toHaveLength(1);
    const mp3Count = await mongo.db.collection("mp3s.files").countDocuments();
    await queue.publish(QUEUES.video, { jobId: id.toHexString() }, { messageId: id.toHexString() });
    await Bun.sleep(700);
    expect(await takeMp3Messages(1)).toEqual([{ jobId: id.toHexString(), status: "done" }]); // not notified yet: announce again
    await jobs.markNotified(id);
    await queue.publish(QUEUES.video, { jobId: id.toHexString() }, { messageId: id.toHexString() });
    await Bun.sleep(700);
    expect(await takeMp3Messages()).toEqual([]);
    expect(await mongo.db.collection("mp3s.files").countDocuments()).toBe(mp3Count);
    expect((await jobs.get(id))!.audioFileId).toEqual(done.audioFileId);
  });

  test("a message for a deleted job is acknowledged and forgotten", async () => {
    const id = await queueJob(await makeVideo({ seconds: 1 }));
    await jobs.remove(id);
    await Bun.sleep(1000);
    expect(await jobs.get(id)).toBeNull();
    expect(await takeMp3Messages()).toEqual([]);
  });
});

describe("transient trouble", () => {
  test("is retried up to the bound, then the job fails as given up and the message is dead-lettered", async () => {
    // A spool directory that cannot be written stands in for a full disk: every attempt fails.
    const converter = await startConverter({
      TMP_DIR: join(tmp, "missing", "dir"),
      MAX_ATTEMPTS: "3",
      SHUTDOWN_GRACE_MS: "1000",
    });
    try {
      const id = await queueJob(await makeVideo({ seconds: 1 }));
      const job = await waitForJob(id);
      expect(job.status).toBe("failed");
      expect(job.error).toStartWith("gave up after 3 attempts");
      expect(job.attempts).toBe(3);
      expect(await takeMp3Messages(1)).toEqual([{ jobId: id.toHexString(), status: "failed" }]);
      expect(await drainQueue<{ jobId: string }>(vhost.url, `${QUEUES.video}.dead`, 1)).toEqual([
        { jobId: id.toHexString() },
      ]);
    } finally {
      await converter.stop();
    }
  });
});

describe("as real processes", () => {
  const children: ReturnType<typeof Bun.spawn>[] = [];
  const startProcess = () => {
    const child = Bun.spawn([process.execPath, "converter.ts"], {
      cwd: join(import.meta.dir, ".."),
      env: {
        ...process.env,
        MONGODB_URL: mongoUrl,
        AMQP_URL: vhost.url,
        TMP_DIR: tmp,
        PORT: "0",
        LOG_LEVEL: "info",
        MP3_QUALITY: "0",
      },
      stdout: "pipe",
      stderr: "inherit",
    });
    children.push(child);
    return child;
  };
  afterAll(async () => {
    for (const child of children) child.kill("SIGKILL");
    await Promise.all(children.map((child) => child.exited));
  });

  test("a worker killed with SIGKILL mid-conversion: another finishes the job, one MP3, one announcement", async () => {
    const video = await makeVideo({ seconds: 240, size: "64x36" });
    const first = startProcess();
    const id = await queueJob(video, "long.mp4");
    await waitForJob(id, ["converting"]);
    await Bun.sleep(300);
    first.kill("SIGKILL");
    await first.exited;
    expect(readdirSync(tmp)).toHaveLength(1); // a killed process cannot clean up...
    const second = startProcess(); // ...so the next worker removes what dead workers left
    const job = await waitForJob(id, ["done", "failed"], 120_000);
    expect(job.status).toBe("done");
    expect(job.attempts).toBe(2);
    expect(await takeMp3Messages(1)).toEqual([{ jobId: id.toHexString(), status: "done" }]); // announced after stray MP3s are removed
    expect(await mongo.db.collection("mp3s.files").countDocuments({ "metadata.jobId": id.toHexString() })).toBe(1);
    second.kill("SIGTERM");
    expect(await second.exited).toBe(0);
  }, 180_000);

  test("SIGTERM during a conversion loses nothing: the job finishes within the grace period or is handed back and done later", async () => {
    const video = await makeVideo({ seconds: 240, size: "64x36" });
    const worker = startProcess();
    const id = await queueJob(video, "term.mp4");
    await waitForJob(id, ["converting"]);
    worker.kill("SIGTERM");
    expect(await worker.exited).toBe(0);
    const after = (await jobs.get(id))!;
    if (after.status !== "done") {
      const next = startProcess();
      await waitForJob(id, ["done", "failed"], 120_000);
      next.kill("SIGTERM");
      await next.exited;
    }
    const job = (await jobs.get(id))!;
    expect(job.status).toBe("done");
    expect(await takeMp3Messages(1)).toEqual([{ jobId: id.toHexString(), status: "done" }]);
  }, 180_000);

  test("SIGTERM with a grace period too short hands the job back (requeued, attempt not counted)", async () => {
    // 10 minutes of audio keep ffmpeg busy for seconds, so the signal lands mid-conversion.
    const video = await makeVideo({ seconds: 600, size: "64x36" });
    const child = Bun.spawn([process.execPath, "converter.ts"], {
      cwd: join(import.meta.dir, ".."),
      env: {
        ...process.env,
        MONGODB_URL: mongoUrl,
        AMQP_URL: vhost.url,
        TMP_DIR: tmp,
        PORT: "0",
        LOG_LEVEL: "silent",
        MP3_QUALITY: "0",
        SHUTDOWN_GRACE_MS: "0",
      },
      stderr: "inherit",
    });
    children.push(child);
    const id = await queueJob(video, "handback.mp4");
    await waitForJob(id, ["converting"]);
    child.kill("SIGTERM");
    expect(await child.exited).toBe(0);
    const handedBack = (await jobs.get(id))!;
    expect(handedBack.status).toBe("converting");
    expect(handedBack.attempts).toBe(0);
    const next = startProcess();
    const job = await waitForJob(id, ["done", "failed"], 120_000);
    expect(job.status).toBe("done");
    expect(job.attempts).toBe(1);
    next.kill("SIGTERM");
    await next.exited;
    await takeMp3Messages(1);
  }, 180_000);
});
