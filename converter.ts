// converter: consumes `video`, turns the job's video into a checked MP3 with ffmpeg,
// stores it in GridFS `mp3s`, marks the job done and publishes to `mp3`.
// Bad input fails the job once, with a reason a person understands; transient
// trouble is retried a bounded number of times, then dead-lettered. Nothing loops.
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Type } from "@sinclair/typebox";
import { Elysia } from "elysia";
import ffmpeg from "fluent-ffmpeg";
import type { ObjectId } from "mongodb";
import { Counter, Histogram } from "prom-client";
import { Flag, LogLevel, loadConfig, Port, Url } from "./lib/config.ts";
import { fileStore, mp3Filename } from "./lib/files.ts";
import { health } from "./lib/health.ts";
import { type Job, jobStore, parseJobId } from "./lib/jobs.ts";
import { BadLink, fetchVideo, parseAllowList } from "./lib/link.ts";
import { createLogger, type Logger } from "./lib/log.ts";
import { createMetrics } from "./lib/metrics.ts";
import { connectMongo, type Mongo, retryAfterMongo } from "./lib/mongo.ts";
import { problems } from "./lib/problem.ts";
import { connectQueue, type Delivery, QUEUES, type Queue } from "./lib/queue.ts";
import { stopServing } from "./lib/shutdown.ts";
import { makeJobDir, removeDeadWorkersDirs, removeJobDir } from "./lib/workdir.ts";

// ── config ──────────────────────────────────────────────────────────────────
export const ConverterConfig = Type.Object({
  PORT: Port(3002),
  LOG_LEVEL: LogLevel,
  MONGODB_URL: Url(["mongodb", "mongodb\\+srv"], "mongodb://127.0.0.1:27017/m3dio", "a mongodb:// URL"),
  AMQP_URL: Url(["amqp", "amqps"], "amqp://guest:guest@127.0.0.1:5672", "an amqp:// URL"),
  MAX_UPLOAD_BYTES: Type.Integer({ minimum: 1, default: 2 * 1024 ** 3, description: "largest video accepted" }),
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
  URL_ALLOW_HOSTS: Type.String({ default: "", description: "hosts or CIDRs link downloads may reach" }),
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

// ── models ──────────────────────────────────────────────────────────────────
export interface VideoMessage {
  jobId: string;
}
export interface Mp3Message {
  jobId: string;
  status: "done" | "failed";
}

// ── errors ──────────────────────────────────────────────────────────────────
/** The video itself is the problem: retrying cannot help. The message is for the user. */
export class BadInput extends Error {
  override name = "BadInput";
}
/** The worker is stopping: hand the job back untouched. */
class HandedBack extends Error {
  override name = "HandedBack";
}

// ── media ───────────────────────────────────────────────────────────────────
interface SourceInfo {
  audioSeconds: number;
}

async function probeSource(path: string): Promise<SourceInfo> {
  if ((await stat(path)).size === 0) throw new BadInput("the file is empty");
  let data: ffmpeg.FfprobeData;
  try {
    data = await new Promise((resolve, reject) =>
      ffmpeg.ffprobe(path, (error, result) => (error ? reject(error) : resolve(result))),
    );
  } catch {
    throw new BadInput("the file is not a video we can read (damaged, truncated or not a media file)");
  }
  const audio = data.streams.find((stream) => stream.codec_type === "audio");
  if (!audio) throw new BadInput("the video has no audio track");
  const seconds = Number(audio.duration) || Number(data.format.duration);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new BadInput("the video's audio track is empty");
  return { audioSeconds: seconds };
}

// ── the consumer ────────────────────────────────────────────────────────────
export interface ConverterDeps {
  config: ConverterConfig;
  log: Logger;
  mongo: Mongo;
  queue: Queue;
}

export function createConverter({ config, log, mongo, queue }: ConverterDeps) {
  const files = fileStore(mongo.db, { log });
  const jobs = jobStore(mongo.db);
  const metrics = createMetrics("converter");
  const outcomes = new Counter({
    name: "converter_jobs_total",
    help: "jobs handled, by outcome",
    labelNames: ["outcome"] as const,
    registers: [metrics.registry],
  });
  const seconds = new Histogram({
    name: "converter_conversion_seconds",
    help: "time from message to MP3 stored",
    buckets: [1, 2, 5, 10, 30, 60, 120, 300, 600, 1800],
    registers: [metrics.registry],
  });
  const bytesIn = new Counter({
    name: "converter_video_bytes_total",
    help: "video bytes read",
    registers: [metrics.registry],
  });
  const bytesOut = new Counter({
    name: "converter_mp3_bytes_total",
    help: "MP3 bytes written",
    registers: [metrics.registry],
  });
  const bytesLinked = new Counter({
    name: "converter_link_bytes_total",
    help: "video bytes downloaded from links",
    registers: [metrics.registry],
  });
  const allowList = parseAllowList(config.URL_ALLOW_HOSTS);
  const running = new Map<string, { kill(): void }>();
  let handingBack = false; // the grace period is over: hand back what is not finished
  const checkHandBack = () => {
    if (handingBack) throw new HandedBack("stopping");
  };

  const publishOutcome = (jobId: ObjectId, status: Mp3Message["status"]) =>
    queue.publish(QUEUES.mp3, { jobId: jobId.toHexString(), status } satisfies Mp3Message, {
      messageId: `${jobId}-${status}`,
    });

  const needsDownload = (job: Job) => job.source.kind === "url" && !job.videoFileId;

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
      if (strays.length) jobLog.info({ removed: strays.length }, "removed MP3s an earlier attempt left behind");
    } catch (error) {
      jobLog.warn({ err: error }, "could not look for MP3s an earlier attempt left behind");
    }
  }

  /** After a failure past storing the MP3: remove it unless the job points to it (markDone may have landed without its answer). */
  async function dropUnclaimedMp3(jobId: ObjectId, fileId: ObjectId) {
    const job = await jobs.get(jobId);
    if (job?.audioFileId?.equals(fileId)) return;
    await files.remove("mp3s", fileId);
  }

  /**
   * A link job's first step: the video is fetched into GridFS `videos` and attached to
   * the job, then converted like an upload. Null if the job went away meanwhile.
   */
  async function download(job: Job, jobLog: Logger): Promise<Job | null> {
    checkHandBack();
    const started = performance.now();
    const jobId = job._id.toHexString();
    // A worker killed mid-download leaves a partial file nobody points to: start clean.
    await files.removeJobFiles("videos", jobId);
    const stopping = new AbortController();
    running.set(jobId, { kill: () => stopping.abort(new HandedBack("stopping")) });
    let lastWrite = 0;
    let stored;
    try {
      stored = await fetchVideo(
        job.source.url ?? "",
        {
          allow: allowList,
          maxBytes: config.MAX_UPLOAD_BYTES,
          timeoutMs: config.URL_TIMEOUT_MS,
          signal: stopping.signal,
          onProgress(bytes, total) {
            const now = Date.now();
            if (!total || now - lastWrite < PROGRESS_INTERVAL_MS) return; // an unknown size shows no fraction
            lastWrite = now;
            void jobs
              .setProgress(job._id, Math.min(DOWNLOAD_SHARE - 1, (bytes / total) * DOWNLOAD_SHARE))
              .catch(() => {});
          },
        },
        async (video) => {
          const metadata = {
            owner: job.userId,
            filename: job.source.filename,
            contentType: "application/octet-stream",
            jobId,
          };
          const file = await files.upload("videos", video.source, metadata, ...video.transforms);
          return { ...file, mime: (await video.sniffed).mime, url: video.url };
        },
      );
    } catch (error) {
      if (!(error instanceof BadLink)) throw error; // LinkUnavailable, store trouble, HandedBack
      jobLog.info({ reason: error.message, ...error.details }, "link refused");
      throw new BadInput(error.message);
    } finally {
      running.delete(jobId);
    }
    const attached = await jobs.attachVideo(
      job._id,
      stored.id,
      { bytes: stored.bytes, contentType: stored.mime },
      DOWNLOAD_SHARE,
    );
    if (!attached) {
      await files.remove("videos", stored.id);
      jobLog.info("job deleted or finished elsewhere while downloading; video dropped");
      return null;
    }
    bytesLinked.inc(stored.bytes);
    jobLog.info(
      {
        bytes: stored.bytes,
        type: stored.mime,
        host: new URL(stored.url).host,
        seconds: (performance.now() - started) / 1000,
      },
      "link downloaded",
    );
    return attached;
  }

  /** Converts one job; resolves when the outcome is stored and announced. */
  async function convert(job: Job, jobLog: Logger): Promise<void> {
    const started = performance.now();
    const workDir = await makeJobDir(config.TMP_DIR, job._id.toHexString());
    let audioFileId: ObjectId | undefined;
    try {
      const input = join(workDir, "input");
      const output = join(workDir, "output.mp3");
      if (!job.videoFileId) throw new BadInput("the job has no video");
      // Spool to a file: an MP4 with its index at the end cannot be read from a pipe.
      bytesIn.inc(await files.saveToFile("videos", job.videoFileId, input));
      checkHandBack();
      // ffprobe runs beside ffmpeg rather than before it: its answer is needed only for
      // progress and for the check below, and waiting for it cost ~60 ms per job.
      const probing = probeSource(input);
      probing.catch(() => running.get(job._id.toHexString())?.kill()); // bad input: stop ffmpeg too
      const encoding = transcode(job._id, input, output, probing, job.source.kind === "url" ? DOWNLOAD_SHARE : 0);
      const [probe, encoded] = await Promise.allSettled([probing, encoding]);
      if (probe.status === "rejected") throw probe.reason; // names the cause better than ffmpeg's failure
      if (encoded.status === "rejected") throw encoded.reason;
      const source = probe.value;
      // ffmpeg can exit 0 having written a useless file: the MP3 must last as long as the audio.
      // Its length is ffmpeg's own count of what it encoded, not a second ffprobe (~50 ms).
      const durationSec = encoded.value;
      const produced = await stat(output);
      const tolerance = Math.max(1, source.audioSeconds * 0.02);
      if (produced.size === 0 || Math.abs(durationSec - source.audioSeconds) > tolerance) {
        throw new BadInput(
          `the video seems damaged: its audio should last ${source.audioSeconds.toFixed(1)} s but only ${durationSec.toFixed(1)} s could be read`,
        );
      }
      const stored = await files.upload("mp3s", createReadStream(output), {
        owner: job.userId,
        filename: mp3Filename(job.source.filename),
        contentType: "audio/mpeg",
        jobId: job._id.toHexString(),
      });
      audioFileId = stored.id;
      const done = await jobs.markDone(job._id, stored.id, {
        bytes: stored.bytes,
        durationSec: Math.round(durationSec * 100) / 100,
      });
      if (!done) {
        jobLog.info("job deleted or finished elsewhere while converting; result dropped");
        await files.remove("mp3s", stored.id);
        return;
      }
      audioFileId = undefined; // now owned by the job
      await removeStrayMp3s(job._id, stored.id, jobLog);
      bytesOut.inc(stored.bytes);
      seconds.observe((performance.now() - started) / 1000);
      await publishOutcome(job._id, "done");
      if (!config.KEEP_VIDEOS) await files.remove("videos", job.videoFileId);
      outcomes.inc({ outcome: "done" });
      jobLog.info({ bytes: stored.bytes, durationSec, seconds: (performance.now() - started) / 1000 }, "converted");
    } finally {
      // If the store is away this leaves the file; the attempt that finishes the job removes it.
      if (audioFileId) await dropUnclaimedMp3(job._id, audioFileId).catch(() => {});
      await removeJobDir(workDir);
    }
  }

  /** Runs ffmpeg; resolves with the seconds of audio it wrote (its last `time=` report). */
  function transcode(
    jobId: ObjectId,
    input: string,
    output: string,
    probing: Promise<SourceInfo>,
    progressFrom: number,
  ): Promise<number> {
    let totalSeconds = 0; // known once the probe answers; until then no progress is shown
    probing.then(
      (source) => (totalSeconds = source.audioSeconds),
      () => {},
    );
    return new Promise((resolve, reject) => {
      let lastWrite = 0;
      let writtenSeconds = 0;
      let killed = false;
      // The MP3 starts at 0 even when the audio starts later than the video, so ffmpeg's
      // time= counts the audio's length, not its offset plus its length.
      const command = ffmpeg(input).noVideo().audioFilters("asetpts=PTS-STARTPTS").audioCodec("libmp3lame");
      if (config.MP3_BITRATE_KBPS) command.audioBitrate(config.MP3_BITRATE_KBPS);
      else command.addOutputOption("-q:a", String(config.MP3_QUALITY));
      command
        .format("mp3")
        // Not fluent-ffmpeg's "progress" event: listening to it makes it run ffprobe once more.
        .on("stderr", (line: string) => {
          const time = /time=\s*(\d+:\d+:\d+(?:\.\d+)?)/.exec(line)?.[1];
          if (!time) return;
          writtenSeconds = timemarkSeconds(time);
          const now = Date.now();
          if (now - lastWrite < PROGRESS_INTERVAL_MS || !totalSeconds) return;
          lastWrite = now;
          const done = writtenSeconds / totalSeconds;
          void jobs.setProgress(jobId, Math.min(99, progressFrom + done * (100 - progressFrom))).catch(() => {});
        })
        .on("error", (error: Error) => {
          running.delete(jobId.toHexString());
          if (handingBack) return reject(new HandedBack("stopping"));
          if (/signal/i.test(error.message)) return reject(error); // killed from outside: transient
          reject(new BadInput("the video could not be converted: its audio is damaged or in a format we cannot read"));
        })
        .on("end", () => {
          running.delete(jobId.toHexString());
          resolve(writtenSeconds);
        })
        // fluent-ffmpeg spawns ffmpeg only after checking its capabilities; a kill before
        // that finds no process, so the start is checked against it too.
        .on("start", () => killed && command.kill("SIGKILL"))
        .save(output);
      const kill = () => {
        killed = true;
        command.kill("SIGKILL");
      };
      running.set(jobId.toHexString(), { kill });
      if (handingBack) kill();
    });
  }

  /** Failures a retry may fix are thrown to the queue, which retries them (counted). */
  async function handle(delivery: Delivery<VideoMessage>): Promise<void> {
    const jobId = typeof delivery.body?.jobId === "string" ? parseJobId(delivery.body.jobId) : null;
    if (!jobId) {
      log.warn({ messageId: delivery.messageId }, "video message without a valid jobId; dead-lettered");
      return delivery.deadLetter();
    }
    const jobLog = log.child({ jobId: jobId.toHexString() });
    const existing = await jobs.get(jobId);
    if (!existing) {
      jobLog.info("job no longer exists; message dropped");
      return delivery.ack();
    }
    if (existing.status === "done" || existing.status === "failed") {
      // A redelivery after the outcome was stored: announce it again only if the user never heard.
      if (!existing.notifiedAt) await publishOutcome(jobId, existing.status);
      await removeStrayMp3s(jobId, existing.audioFileId, jobLog);
      jobLog.info({ status: existing.status }, "redelivered message for a finished job");
      return delivery.ack();
    }
    const job = await jobs.startConverting(jobId, needsDownload(existing) ? "downloading" : "converting");
    if (!job) return delivery.ack();
    const userLog = jobLog.child({ userId: job.userId, attempt: delivery.attempt });
    try {
      userLog.info({ phase: job.phase }, "converting");
      const ready = needsDownload(job) ? await download(job, userLog) : job;
      if (ready) await convert(ready, userLog);
      return delivery.ack();
    } catch (error) {
      if (error instanceof HandedBack) {
        // Not the job's fault: the attempt does not count on the job's record.
        await jobs.collection.updateOne({ _id: jobId }, { $inc: { attempts: -1 } });
        userLog.info("handed back on shutdown");
        return delivery.requeue();
      }
      if (error instanceof BadInput) {
        const failed = await jobs.markFailed(jobId, error.message);
        if (failed) await publishOutcome(jobId, "failed");
        outcomes.inc({ outcome: "failed" });
        userLog.info({ reason: error.message }, "job failed: bad input");
        return delivery.ack();
      }
      userLog.warn({ err: error }, "conversion hit transient trouble; retrying");
      outcomes.inc({ outcome: "retried" });
      throw error; // handle() waits out a MongoDB outage, then the queue retries it
    }
  }

  /** The queue ran out of attempts for this message: the job fails, the user hears of it. */
  async function giveUp(body: VideoMessage) {
    const jobId = typeof body?.jobId === "string" ? parseJobId(body.jobId) : null;
    if (!jobId) return;
    const reason = `gave up after ${config.MAX_ATTEMPTS} attempts; please try again later`;
    const failed = await jobs.markFailed(jobId, reason);
    if (failed) await publishOutcome(jobId, "failed");
    await removeStrayMp3s(jobId, undefined, log.child({ jobId: jobId.toHexString() }));
    outcomes.inc({ outcome: "gave_up" });
    log.error({ jobId: jobId.toHexString(), userId: failed?.userId, reason }, "job given up; message dead-lettered");
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
      await queue.consume(
        QUEUES.video,
        { prefetch: config.CONVERTER_CONCURRENCY, maxAttempts: config.MAX_ATTEMPTS, onExhausted: giveUp },
        retryAfterMongo(mongo, log, handle, { giveUp: () => handingBack }),
      );
    },
    /** Stop taking work; give running conversions the grace period, then hand them back. */
    async stop(graceMs = config.SHUTDOWN_GRACE_MS) {
      await queue.stopConsuming();
      const deadline = Date.now() + graceMs;
      while (queue.inFlight() > 0 && Date.now() < deadline) await Bun.sleep(100);
      handingBack = true;
      for (const conversion of running.values()) conversion.kill();
      // What is past ffmpeg (storing the MP3) finishes; the rest sees handingBack and requeues.
      while (queue.inFlight() > 0) await Bun.sleep(50);
    },
    running: () => running.size,
  };
}

function timemarkSeconds(timemark: string): number {
  const [hours = 0, minutes = 0, secs = 0] = timemark.split(":").map(Number);
  return hours * 3600 + minutes * 60 + secs;
}

// ── start and graceful stop ─────────────────────────────────────────────────
if (import.meta.main) {
  const config = loadConfig(ConverterConfig);
  const log = createLogger("converter", config.LOG_LEVEL);
  const mongo = await connectMongo(config.MONGODB_URL, { appName: "converter" });
  const queue = await connectQueue(config.AMQP_URL, log);
  const converter = createConverter({ config, log, mongo, queue });
  await converter.start();
  converter.app.listen({ port: config.PORT, hostname: "0.0.0.0" });
  log.info({ port: converter.app.server?.port, concurrency: config.CONVERTER_CONCURRENCY }, "converter consuming");
  const stop = async (signal: string) => {
    log.info({ signal }, "stopping");
    await converter.stop();
    await queue.close();
    await mongo.close();
    await stopServing(converter.app, { log, graceMs: 1000 }); // health and metrics only
    process.exit(0);
  };
  process.once("SIGTERM", () => void stop("SIGTERM"));
  process.once("SIGINT", () => void stop("SIGINT"));
}
