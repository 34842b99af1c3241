// converter: consumes `video`, turns the job's video into a checked MP3 with ffmpeg,
// stores it in GridFS `mp3s`, marks the job done and publishes to `mp3`.
// Bad input fails the job once, with a reason a person understands; transient
// trouble is retried a bounded number of times, then dead-lettered. Nothing loops.
// Each message in hand has an AbortController: stopping aborts them after the grace
// period, which stops the link download or ffmpeg, and the message is handed back.
import { createReadStream } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Type } from "@sinclair/typebox";
import { Elysia } from "elysia";
import { ObjectId } from "mongodb";
import { checkOutput } from "./converter/check.ts";
import { downloadVideo, type LinkDownloads } from "./converter/download.ts";
import { BadInput, HandedBack } from "./converter/errors.ts";
import { converterMetrics } from "./converter/metrics.ts";
import { probeSource } from "./converter/probe.ts";
import { transcode } from "./converter/transcode.ts";
import { makeJobDir, removeDeadWorkersDirs, removeJobDir } from "./converter/workdir.ts";
import { AmqpUrl, Flag, LogLevel, MaxUploadBytes, MongoUrl, Port } from "./lib/config.ts";
import { fileStore, mp3Filename } from "./lib/files.ts";
import { health } from "./lib/health.ts";
import { type Job, jobStore } from "./lib/jobs.ts";
import { AllowHosts, parseAllowList } from "./lib/link.ts";
import type { Logger } from "./lib/log.ts";
import type { Mp3Message, VideoMessage } from "./lib/messages.ts";
import { connectMongo, type Mongo, retryAfterMongo } from "./lib/mongo.ts";
import { problems } from "./lib/problem.ts";
import { connectQueue, type Delivery, QUEUES, type Queue } from "./lib/queue.ts";
import { runService, type Service } from "./lib/runner.ts";

// ── config ──────────────────────────────────────────────────────────────────
export const ConverterConfig = Type.Object({
  PORT: Port(3002),
  LOG_LEVEL: LogLevel,
  MONGODB_URL: MongoUrl,
  AMQP_URL: AmqpUrl,
  MAX_UPLOAD_BYTES: MaxUploadBytes,
  CONVERTER_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 32, default: 1, description: "conversions at once" }),
  MP3_QUALITY: Type.Integer({ minimum: 0, maximum: 9, default: 2, description: "LAME VBR quality" }),
  MP3_BITRATE_KBPS: Type.Optional(
    Type.Integer({ minimum: 32, maximum: 320, description: "constant bitrate instead of VBR" }),
  ),
  KEEP_VIDEOS: Flag(false, "keep the source video after success"),
  SHUTDOWN_GRACE_MS: Type.Integer({
    minimum: 0,
    default: 25_000,
    description: "time running conversions get on SIGTERM",
  }),
  MAX_ATTEMPTS: Type.Integer({ minimum: 1, maximum: 20, default: 3, description: "tries before a job is given up" }),
  URL_ALLOW_HOSTS: AllowHosts,
  URL_TIMEOUT_MS: Type.Integer({
    minimum: 1,
    default: 60_000,
    description: "longest a link download may take, redirects included",
  }),
  TMP_DIR: Type.String({ default: tmpdir(), minLength: 1, description: "where videos are spooled while converting" }),
});
export type ConverterConfig = typeof ConverterConfig.static;

/** Progress is written into the job at most this often. */
const PROGRESS_INTERVAL_MS = 1000;
/** A link job's progress: downloading fills 0-50, converting 50-100 (an upload's converting fills 0-100). */
const DOWNLOAD_SHARE = 50;

// ── the consumer ────────────────────────────────────────────────────────────
export interface ConverterDeps {
  config: ConverterConfig;
  log: Logger;
  mongo: Mongo;
  queue: Queue;
}

export function createConverter({ config, log, mongo, queue }: ConverterDeps): Service {
  const files = fileStore(mongo.db, { log });
  const jobs = jobStore(mongo.db);
  const metrics = converterMetrics();
  const links: LinkDownloads = {
    files,
    jobs,
    allow: parseAllowList(config.URL_ALLOW_HOSTS),
    maxBytes: config.MAX_UPLOAD_BYTES,
    timeoutMs: config.URL_TIMEOUT_MS,
  };
  /** The controllers of the messages in hand: stop() aborts them to hand the messages back. */
  const inHand = new Set<AbortController>();

  const publishOutcome = (jobId: ObjectId, status: Mp3Message["status"]) =>
    queue.publish(QUEUES.mp3, { jobId: jobId.toHexString(), status }, { messageId: `${jobId}-${status}` });

  const needsDownload = (job: Job) => job.source.kind === "url" && !job.videoFileId;

  /** Writes a job's progress (percent) at most once a second; a lost write is caught up by the next. */
  function progressWriter(jobId: ObjectId) {
    let lastWrite = 0;
    return (percent: number) => {
      const now = Date.now();
      if (now - lastWrite < PROGRESS_INTERVAL_MS) return;
      lastWrite = now;
      void jobs.setProgress(jobId, percent).catch(() => {});
    };
  }

  /** One message in hand: its own controller, and MongoDB outages waited out (until the signal) before a retry. */
  async function consume(delivery: Delivery<VideoMessage>): Promise<void> {
    const controller = new AbortController();
    inHand.add(controller);
    try {
      const handler = (held: Delivery<VideoMessage>) => handle(held, controller.signal);
      await retryAfterMongo(mongo, log, handler, { giveUp: () => controller.signal.aborted })(delivery);
    } finally {
      inHand.delete(controller);
    }
  }

  /** Failures a retry may fix are thrown to the queue, which retries them (counted). */
  async function handle(delivery: Delivery<VideoMessage>, signal: AbortSignal): Promise<void> {
    const jobId = new ObjectId(delivery.body.jobId);
    const jobLog = log.child({ jobId: delivery.body.jobId });
    const existing = await jobs.get(jobId);
    if (!existing) {
      jobLog.info({ event: "job.gone" }, "job no longer exists; message dropped");
      return delivery.ack();
    }
    if (existing.status === "done" || existing.status === "failed") {
      // A redelivery after the outcome was stored: announce it again only if the user never heard.
      if (!existing.notifiedAt) await publishOutcome(jobId, existing.status);
      await removeStrayMp3s(jobId, existing.audioFileId, jobLog);
      jobLog.info(
        { event: "job.redelivered_finished", status: existing.status },
        "redelivered message for a finished job",
      );
      return delivery.ack();
    }
    const job = await jobs.startConverting(jobId, needsDownload(existing) ? "downloading" : "converting");
    if (!job) {
      jobLog.info({ event: "job.gone" }, "job deleted or finished elsewhere meanwhile; message dropped");
      return delivery.ack();
    }
    const userLog = jobLog.child({ userId: job.userId, attempt: delivery.attempt });
    try {
      userLog.info({ event: "job.converting", phase: job.phase }, "converting");
      const ready = needsDownload(job) ? await download(job, signal, userLog) : job;
      if (ready) await convert(ready, signal, userLog);
      return delivery.ack();
    } catch (error) {
      return settleFailure(error, delivery, userLog);
    }
  }

  /** A hand-back requeues the message untouched, bad input fails the job; anything else is thrown for a retry. */
  async function settleFailure(error: unknown, delivery: Delivery<VideoMessage>, jobLog: Logger): Promise<void> {
    const jobId = new ObjectId(delivery.body.jobId);
    if (error instanceof HandedBack) {
      // Not the job's fault: the attempt does not count on the job's record.
      await jobs.collection.updateOne({ _id: jobId }, { $inc: { attempts: -1 } });
      jobLog.info({ event: "job.handed_back" }, "handed back on shutdown");
      return delivery.requeue();
    }
    if (error instanceof BadInput) {
      const failed = await jobs.markFailed(jobId, error.message);
      if (failed) await publishOutcome(jobId, "failed");
      metrics.outcomes.inc({ outcome: "failed" });
      jobLog.info({ event: "job.failed", reason: error.message }, "job failed: bad input");
      return delivery.ack();
    }
    jobLog.warn({ event: "job.retrying", err: error }, "conversion hit transient trouble; retrying");
    metrics.outcomes.inc({ outcome: "retried" });
    throw error; // retryAfterMongo waits out a MongoDB outage, then the queue retries it
  }

  /** A link job's video into GridFS, attached to the job; null if the job went away meanwhile. */
  async function download(job: Job, signal: AbortSignal, jobLog: Logger): Promise<Job | null> {
    const report = progressWriter(job._id);
    const attached = await downloadVideo(job, links, { signal, share: DOWNLOAD_SHARE, report, log: jobLog });
    if (attached) metrics.bytesLinked.inc(attached.source.bytes);
    return attached;
  }

  /** Converts one job; resolves when the outcome is stored and announced. */
  async function convert(job: Job, signal: AbortSignal, jobLog: Logger): Promise<void> {
    const started = performance.now();
    const workDir = await makeJobDir(config.TMP_DIR, job._id.toHexString());
    let unclaimed: ObjectId | undefined; // an MP3 stored that the job does not point to yet
    try {
      if (!job.videoFileId) throw new BadInput("the job has no video");
      const { output, durationSec } = await encode(job, job.videoFileId, workDir, signal);
      // Past ffmpeg the signal is not heeded: storing the MP3 finishes.
      const stored = await files.upload("mp3s", createReadStream(output), {
        owner: job.userId,
        filename: mp3Filename(job.source.filename),
        contentType: "audio/mpeg",
        jobId: job._id.toHexString(),
      });
      unclaimed = stored.id;
      const audio = { bytes: stored.bytes, durationSec: Math.round(durationSec * 100) / 100 };
      if (!(await jobs.markDone(job._id, stored.id, audio))) {
        jobLog.info({ event: "job.gone" }, "job deleted or finished elsewhere while converting; result dropped");
        await files.remove("mp3s", stored.id);
        return;
      }
      unclaimed = undefined; // now owned by the job
      await removeStrayMp3s(job._id, stored.id, jobLog);
      metrics.bytesOut.inc(stored.bytes);
      metrics.seconds.observe((performance.now() - started) / 1000);
      await publishOutcome(job._id, "done");
      if (!config.KEEP_VIDEOS) await files.remove("videos", job.videoFileId);
      metrics.outcomes.inc({ outcome: "done" });
      const seconds = (performance.now() - started) / 1000;
      jobLog.info({ event: "job.converted", bytes: stored.bytes, durationSec, seconds }, "converted");
    } finally {
      // If the store is away this leaves the file; the attempt that finishes the job removes it.
      if (unclaimed) await dropUnclaimedMp3(job._id, unclaimed).catch(() => {});
      await removeJobDir(workDir);
    }
  }

  /** Spools the video, runs ffprobe beside ffmpeg, checks the MP3; answers its path and length. */
  async function encode(job: Job, videoFileId: ObjectId, workDir: string, signal: AbortSignal) {
    const input = join(workDir, "input");
    const output = join(workDir, "output.mp3");
    // Spool to a file: an MP4 with its index at the end cannot be read from a pipe.
    metrics.bytesIn.inc(await files.saveToFile("videos", videoFileId, input));
    signal.throwIfAborted();
    // ffprobe runs beside ffmpeg rather than before it: its answer is needed only for
    // progress and for the check, and waiting for it cost ~60 ms per job. A probe that
    // finds bad input stops ffmpeg through this conversion's own controller.
    const probeFailed = new AbortController();
    const probing = probeSource(input);
    let audioSeconds = 0; // known once the probe answers; until then no progress is shown
    probing.then(
      (source) => (audioSeconds = source.audioSeconds),
      (error) => probeFailed.abort(error),
    );
    const from = job.source.kind === "url" ? DOWNLOAD_SHARE : 0;
    const report = progressWriter(job._id);
    const encoding = transcode(input, output, {
      quality: config.MP3_QUALITY,
      bitrateKbps: config.MP3_BITRATE_KBPS,
      signal: AbortSignal.any([signal, probeFailed.signal]),
      onProgress: (written) => audioSeconds && report(Math.min(99, from + (written / audioSeconds) * (100 - from))),
    });
    const [probe, encoded] = await Promise.allSettled([probing, encoding]);
    if (probe.status === "rejected") throw probe.reason; // names the cause better than ffmpeg's failure
    if (encoded.status === "rejected") throw encoded.reason;
    await checkOutput(output, probe.value, encoded.value);
    return { output, durationSec: encoded.value };
  }

  /** The queue ran out of attempts for this message: the job fails, the user hears of it. */
  async function giveUp(body: VideoMessage) {
    const jobId = new ObjectId(body.jobId);
    const reason = `gave up after ${config.MAX_ATTEMPTS} attempts; please try again later`;
    const failed = await jobs.markFailed(jobId, reason);
    if (failed) await publishOutcome(jobId, "failed");
    await removeStrayMp3s(jobId, undefined, log.child({ jobId: body.jobId }));
    metrics.outcomes.inc({ outcome: "gave_up" });
    log.error(
      { event: "job.given_up", jobId: body.jobId, userId: failed?.userId, reason },
      "job given up; message dead-lettered",
    );
  }

  /**
   * MP3s of this job other than the one it points to: left by an attempt that stored its
   * MP3 and died (or lost the store) before marking the job done. Run once the job is
   * finished, when its `audioFileId` can no longer change, so a concurrent attempt's
   * file is never mistaken for the job's. Failing here does not fail the job.
   */
  async function removeStrayMp3s(jobId: ObjectId, keep: ObjectId | undefined, jobLog: Logger) {
    try {
      const strays = await mongo.db
        .collection("mp3s.files")
        .find(
          { "metadata.jobId": jobId.toHexString(), ...(keep ? { _id: { $ne: keep } } : {}) },
          { projection: { _id: 1 } },
        )
        .toArray();
      for (const { _id } of strays) await files.remove("mp3s", _id as ObjectId);
      if (strays.length)
        jobLog.info(
          { event: "mp3.stray_removed", removed: strays.length },
          "removed MP3s an earlier attempt left behind",
        );
    } catch (error) {
      jobLog.warn({ event: "mp3.stray_check_failed", err: error }, "could not look for MP3s an earlier attempt left");
    }
  }

  /** After a failure past storing the MP3: remove it unless the job points to it (markDone may have landed without its answer). */
  async function dropUnclaimedMp3(jobId: ObjectId, fileId: ObjectId) {
    const job = await jobs.get(jobId);
    if (job?.audioFileId?.equals(fileId)) return;
    await files.remove("mp3s", fileId);
  }

  const app = new Elysia({ name: "converter" })
    .use(problems(log))
    .use(metrics.plugin)
    .use(health({ mongodb: () => mongo.ping(), rabbitmq: () => queue.ping() }));

  return {
    app,
    async start() {
      await removeDeadWorkersDirs(config.TMP_DIR, log);
      await jobs.ensureIndexes();
      const options = { prefetch: config.CONVERTER_CONCURRENCY, maxAttempts: config.MAX_ATTEMPTS, onExhausted: giveUp };
      await queue.consume(QUEUES.video, options, consume);
      log.info({ event: "converter.consuming", concurrency: config.CONVERTER_CONCURRENCY }, "converter consuming");
    },
    /** Stop taking work; give the messages in hand the grace period, then hand back what is not done. */
    async stop() {
      await queue.stopConsuming();
      const deadline = Date.now() + config.SHUTDOWN_GRACE_MS;
      while (queue.inFlight() > 0 && Date.now() < deadline) await Bun.sleep(100);
      // What is past ffmpeg (storing the MP3) finishes; the rest stops and is handed back.
      // Aborted again each round: a message whose handler began after the first round is caught too.
      const reason = new HandedBack("stopping");
      while (queue.inFlight() > 0) {
        for (const controller of inHand) controller.abort(reason);
        await Bun.sleep(50);
      }
    },
  };
}

// ── start and graceful stop ─────────────────────────────────────────────────
if (import.meta.main) {
  await runService(
    "converter",
    ConverterConfig,
    async (config, log) => {
      const mongo = await connectMongo(config.MONGODB_URL, { appName: "converter" });
      const queue = await connectQueue(config.AMQP_URL, log);
      return { service: createConverter({ config, log, mongo, queue }), resources: [mongo, queue] };
    },
    // The grace period, then 10 s for ffmpeg to die, the hand-backs and the MP3s past ffmpeg
    // to be stored; still within k3d's terminationGracePeriodSeconds (40 s for 25 s of grace).
    (config) => ({ httpGraceMs: 1000, deadlineMs: config.SHUTDOWN_GRACE_MS + 10_000 }),
  );
}
