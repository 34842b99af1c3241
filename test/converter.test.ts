// The converter in-process with real ffmpeg, real RabbitMQ (a vhost of its own) and
// MongoDB (MONGODB_URL or the stand-in). Converter processes killed or stopped with
// SIGTERM are test/faults' (converter-crash.test.ts, shutdown.test.ts).
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { createReadStream, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { fileTypeFromBuffer } from "file-type";
import type { ObjectId } from "mongodb";
import { inputOptions } from "../converter/inputs.ts";
import { transcode } from "../converter/transcode.ts";
import type { Job } from "../lib/jobs.ts";
import { QUEUES } from "../lib/queue.ts";
import { converterBench } from "./support/converter-bench.ts";
import { makeSilence, processesFor } from "./support/hostile.ts";
import { drainQueue, settle, waitForJob as waitForFinished } from "./support/jobs.ts";
import { makeVideo, probe } from "./support/media.ts";

const bench = converterBench("converter-test");
const { tmp, entries, startConverter } = bench;
// Every temp directory is gone, whatever happened (the worker removes it last, after the job reads done).
afterEach(bench.expectTmpEmpty);

/** The `count`th log entry of the converters that `match`es; throws after `timeoutMs`. */
async function logged(match: (entry: Record<string, unknown>) => boolean, count = 1, timeoutMs = 10_000) {
  const found = await settle(
    async () => entries.filter(match),
    (matching) => matching.length >= count,
    timeoutMs,
  );
  if (found.length < count) throw new Error(`only ${found.length} of ${count} matching log entries in ${timeoutMs} ms`);
  return found[count - 1]!;
}

/**
 * A job as the gateway leaves it: video in GridFS, record queued with the type its first
 * bytes show, message published. What the gateway would refuse (empty, text) is queued
 * as an MP4, as if the sniffer had been fooled: the converter must still fail it cleanly.
 */
async function queueJob(source: string | Buffer, filename = "clip.mp4"): Promise<ObjectId> {
  const bytes = typeof source === "string" ? Buffer.from(await Bun.file(source).arrayBuffer()) : source;
  const contentType = (await fileTypeFromBuffer(bytes))?.mime ?? "video/mp4";
  const stream = typeof source === "string" ? createReadStream(source) : Readable.from([source]);
  return bench.queueUpload(stream, filename, contentType);
}

const waitForJob = (id: ObjectId, statuses?: Job["status"][], timeoutMs?: number) =>
  waitForFinished(bench.jobs, id, statuses, timeoutMs);
/** The `mp3` queue's messages: the announcements the notifier would get. */
const takeMp3Messages = (expected = 0) => drainQueue(bench.vhost.url, QUEUES.mp3, expected);

/** Four minutes of audio: ffmpeg is busy for seconds, long enough to be stopped midway. Made once, when first asked for. */
let longVideo: Promise<string> | undefined;
const makeLongVideo = () => (longVideo ??= makeVideo({ seconds: 240, size: "64x36" }));

const downloadMp3 = (job: Job) =>
  bench.saveFile("mp3s", job.audioFileId!, join(mkdtempSync(join(tmpdir(), "m3dio-mp3-")), "out.mp3"));

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
    ["AVI", { format: "avi" }],
    ["MPEG-TS", { format: "ts" }],
    ["FLV", { format: "flv" }],
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
      expect(mp3.streams).toEqual(["audio:mp3", "video:mjpeg"]); // the audio, and a frame as its cover (the default)
      expect(Math.abs(mp3.durationSec - 3)).toBeLessThan(0.3);
      expect(job.audio?.durationSec).toBeCloseTo(mp3.durationSec, 0);
      expect(job.audio?.bytes).toBe((await bench.files.stat("mp3s", job.audioFileId!))!.length);
      expect(
        await settle(
          () => bench.files.stat("videos", job.videoFileId!),
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
      expect(await bench.mongo.db.collection("mp3s.files").countDocuments({ "metadata.jobId": id.toHexString() })).toBe(
        0,
      );
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
    const mp3Count = await bench.mongo.db.collection("mp3s.files").countDocuments();
    const redelivered = (entry: Record<string, unknown>) =>
      entry.event === "job.redelivered_finished" && entry.jobId === id.toHexString();
    await bench.queue.publish(QUEUES.video, { jobId: id.toHexString() }, { messageId: id.toHexString() });
    await logged(redelivered);
    expect(await takeMp3Messages(1)).toEqual([{ jobId: id.toHexString(), status: "done" }]); // not notified yet: announce again
    await bench.jobs.markNotified(id);
    await bench.queue.publish(QUEUES.video, { jobId: id.toHexString() }, { messageId: id.toHexString() });
    await logged(redelivered, 2);
    expect(await takeMp3Messages()).toEqual([]);
    expect(await bench.mongo.db.collection("mp3s.files").countDocuments()).toBe(mp3Count);
    expect((await bench.jobs.get(id))!.audioFileId).toEqual(done.audioFileId);
  });

  test("a message for a deleted job is acknowledged and forgotten", async () => {
    const id = await queueJob(await makeVideo({ seconds: 1 }));
    await bench.jobs.remove(id);
    await logged((entry) => entry.event === "job.gone" && entry.jobId === id.toHexString());
    expect(await bench.jobs.get(id)).toBeNull();
    expect(await takeMp3Messages()).toEqual([]);
  });
});

describe("deleting a job", () => {
  test("mid-conversion stops ffmpeg within 3 s, keeps no MP3, announces nothing and removes the temp dir", async () => {
    const converter = await startConverter();
    try {
      const id = await queueJob(await makeSilence(3 * 3600), "three-hours.mkv"); // ffmpeg needs ~20 s for it
      const jobId = id.toHexString();
      expect(
        await settle(
          async () => processesFor(jobId).filter((process) => process.endsWith("ffmpeg")),
          (running) => running.length > 0,
          30_000,
        ),
      ).toHaveLength(1);
      // What DELETE /jobs/:id does: the job, then its files.
      const job = (await bench.jobs.get(id))!;
      expect(job.status).toBe("converting");
      await bench.jobs.remove(id);
      await bench.files.remove("videos", job.videoFileId!);
      const deleted = performance.now();
      await logged((entry) => entry.event === "job.gone" && entry.jobId === jobId, 1, 3000);
      expect(
        await settle(
          async () => processesFor(jobId),
          (running) => running.length === 0,
          3000,
        ),
      ).toEqual([]);
      const ownDirs = async () => readdirSync(tmp).filter((dir) => dir.includes(`-${jobId}-`));
      expect(await settle(ownDirs, (dirs) => dirs.length === 0, 3000)).toEqual([]);
      expect(performance.now() - deleted).toBeLessThan(3000);
      expect(await bench.mongo.db.collection("mp3s.files").countDocuments({ "metadata.jobId": jobId })).toBe(0);
      expect(await takeMp3Messages()).toEqual([]);
    } finally {
      await converter.stop();
    }
  }, 60_000);
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
      expect(await drainQueue<{ jobId: string }>(bench.vhost.url, `${QUEUES.video}.dead`, 1)).toEqual([
        { jobId: id.toHexString() },
      ]);
    } finally {
      await converter.stop();
    }
  });
});

describe("stopping a worker mid-conversion", () => {
  test("with a grace period too short hands the job back (requeued, attempt not counted)", async () => {
    const video = await makeLongVideo();
    const first = await startConverter({ SHUTDOWN_GRACE_MS: "0", MP3_QUALITY: "0" });
    const id = await queueJob(video, "handback.mp4");
    // Stopped as soon as its ffmpeg runs (a 240 s clip takes it ~2 s: progress, written once a
    // second, could come too late to stop it before the end on a fast machine).
    const running = await settle(
      async () => processesFor(id.toHexString()).filter((process) => process.endsWith("ffmpeg")),
      (found) => found.length > 0,
      30_000,
    );
    expect(running).toHaveLength(1);
    expect((await bench.jobs.get(id))!.status).toBe("converting");
    await first.stop();
    await logged((entry) => entry.event === "job.handed_back" && entry.jobId === id.toHexString());
    const handedBack = (await bench.jobs.get(id))!;
    expect(handedBack.status).toBe("converting");
    expect(handedBack.attempts).toBe(0);
    const next = await startConverter({ MP3_QUALITY: "0" });
    const job = await waitForJob(id, ["done", "failed"], 120_000);
    expect(job.status).toBe("done");
    expect(job.attempts).toBe(1);
    await next.stop();
    await takeMp3Messages(1);
  }, 180_000);
});

describe("transcode", () => {
  test("an abort before fluent-ffmpeg has spawned ffmpeg still kills it, and rejects with the abort's reason", async () => {
    const video = await makeLongVideo();
    const stopping = new AbortController();
    const reason = new Error("stopping");
    const output = join(tmp, "aborted.mp3");
    let started = false;
    // fluent-ffmpeg checks ffmpeg's capabilities before it spawns: the abort lands before the spawn.
    const encoding = transcode(video, output, {
      inputOptions: inputOptions("video/mp4"),
      quality: 2,
      signal: stopping.signal,
      onProgress: () => {
        started = true;
      },
    });
    stopping.abort(reason);
    expect(
      await encoding.then(
        () => "finished",
        (error) => error,
      ),
    ).toBe(reason);
    expect(started).toBe(false); // killed as it started, before it wrote a second
    rmSync(output, { force: true });
  });

  test("an abort mid-encoding kills ffmpeg and rejects with the abort's reason", async () => {
    const video = await makeLongVideo();
    const stopping = new AbortController();
    const reason = new Error("stopping");
    const output = join(tmp, "aborted-midway.mp3");
    let written = 0;
    const encoding = transcode(video, output, {
      inputOptions: inputOptions("video/mp4"),
      quality: 0,
      signal: stopping.signal,
      onProgress: (seconds) => {
        written = seconds;
        if (seconds > 0) stopping.abort(reason);
      },
    });
    expect(
      await encoding.then(
        () => "finished",
        (error) => error,
      ),
    ).toBe(reason);
    expect(written).toBeGreaterThan(0);
    expect(written).toBeLessThan(240);
    rmSync(output, { force: true });
  });

  test("an already aborted signal starts nothing", async () => {
    const reason = new Error("stopped");
    const output = join(tmp, "never.mp3");
    const encoding = transcode(join(tmp, "no-such-input"), output, {
      inputOptions: inputOptions("video/mp4"),
      quality: 2,
      signal: AbortSignal.abort(reason),
    });
    expect(
      await encoding.then(
        () => "finished",
        (error) => error,
      ),
    ).toBe(reason);
    expect(existsSync(output)).toBe(false);
  });
});
