// The two steps of an attempt: a link job's download, then the conversion proper (the
// source streamed out of GridFS, or spooled to a temp dir where it must be: source.ts; ffmpeg with ffprobe beside it (converter/encode.ts), the
// MP3 checked, its ID3 tag put in front as it is stored in GridFS `mp3s`, the cover stored
// in `covers`, the job marked done and the outcome announced).
import { createReadStream } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import type { ObjectId } from "mongodb";
import { mp3Filename } from "../lib/files.ts";
import type { Job } from "../lib/jobs.ts";
import type { Logger } from "../lib/log.ts";
import { checkOutput } from "./check.ts";
import { type ConverterContext, publishOutcome } from "./context.ts";
import { downloadVideo } from "./download.ts";
import { type Encoded, encode } from "./encode.ts";
import { BadInput, NotStreamable } from "./errors.ts";
import { id3Tag } from "./id3.ts";
import { dropUnclaimed, removeSourceVideo, removeStrayFiles, type Unclaimed } from "./leftovers.ts";
import { streamedSource } from "./source.ts";
import { makeJobDir, removeJobDir } from "./workdir.ts";

/** Progress is written into the job at most this often. */
const PROGRESS_INTERVAL_MS = 1000;
/** A link job's progress: downloading fills 0-50, converting 50-100 (an upload's converting fills 0-100). */
const DOWNLOAD_SHARE = 50;

/** A link job's video into GridFS, attached to the job; null if the job went away meanwhile. */
export async function download(
  context: ConverterContext,
  job: Job,
  signal: AbortSignal,
  jobLog: Logger,
): Promise<Job | null> {
  const report = progressWriter(context, job._id);
  const options = { signal, share: DOWNLOAD_SHARE, report, log: jobLog };
  const attached = await downloadVideo(job, context.links, options);
  if (attached) context.metrics.bytesLinked.inc(attached.source.bytes);
  return attached;
}

/** Converts one job; resolves when the outcome is stored and announced. */
export async function convert(context: ConverterContext, job: Job, signal: AbortSignal, jobLog: Logger) {
  const { config, jobs, metrics } = context;
  const started = performance.now();
  const workDir = await makeJobDir(config.TMP_DIR, job._id.toHexString());
  const unclaimed: Unclaimed = {}; // files stored that the job does not point to yet
  try {
    if (!job.videoFileId) throw new BadInput("the job has no video");
    const encoded = await streamAndEncode(context, job, job.videoFileId, workDir, signal, jobLog);
    // Past ffmpeg the signal is not heeded: storing the MP3 finishes.
    const stored = await storeResult(context, job, encoded, unclaimed);
    const durationSec = encoded.writtenSeconds;
    const audio = { bytes: stored.mp3.bytes, durationSec: Math.round(durationSec * 100) / 100 };
    const done = await jobs.markDone(job._id, stored.mp3.id, audio, stored.cover?.id);
    if (!done) {
      jobLog.info({ event: "job.gone" }, "job deleted or finished elsewhere while converting; result dropped");
      await dropUnclaimed(context, job._id, unclaimed);
    }
    delete unclaimed.mp3; // dropped, or now owned by the job
    delete unclaimed.cover;
    if (!done) return;
    await removeStrayFiles(context, job._id, { mp3s: stored.mp3.id, covers: stored.cover?.id }, jobLog);
    metrics.bytesOut.inc(stored.mp3.bytes);
    metrics.seconds.observe((performance.now() - started) / 1000);
    await publishOutcome(context, job._id, "done");
    if (!config.KEEP_VIDEOS) await removeSourceVideo(context, job, jobLog);
    metrics.outcomes.inc({ outcome: "done" });
    const seconds = (performance.now() - started) / 1000;
    const { bytes } = stored.mp3;
    jobLog.info({ event: "job.converted", bytes, durationSec, seconds, options: encoded.plan.applied }, "converted");
  } finally {
    // If the store is away this leaves the files; the attempt that finishes the job removes them.
    await dropUnclaimed(context, job._id, unclaimed).catch(() => {});
    await removeJobDir(workDir);
  }
}

/**
 * Encodes the source, streamed out of GridFS where its container allows (converter/source.ts),
 * else spooled to the work dir first; checks the MP3. A streamed source that ffmpeg or
 * ffprobe could not read (an MP4 whose samples a pipe cannot reach in order, a Matroska
 * file without its length) is spooled and converted once more: the file decides, not the pipe.
 */
async function streamAndEncode(
  context: ConverterContext,
  job: Job,
  videoFileId: ObjectId,
  workDir: string,
  signal: AbortSignal,
  log: Logger,
): Promise<Encoded> {
  const from = job.source.kind === "url" ? DOWNLOAD_SHARE : 0;
  const report = progressWriter(context, job._id);
  const onProgress = (fraction: number) => report(Math.min(99, from + fraction * (100 - from)));
  const options = { signal, log, onProgress };
  const streamed = await streamedSource(context.files, videoFileId, job.source.contentType, signal);
  signal.throwIfAborted();
  if (streamed) {
    const { mode, share } = streamed;
    log.info(
      { event: "convert.streamed", mode, ...(share === undefined ? {} : { share }) },
      "converting as the video is read",
    );
    try {
      const encoded = await encode(context, job, streamed, workDir, options);
      await checkOutput(encoded.output, encoded.plan.spanSec, encoded.writtenSeconds);
      context.metrics.bytesIn.inc(streamed.read.bytes);
      // What was read out of the store, against the file: the whole of it, or in `audio` mode far less.
      log.info({ event: "convert.read", mode, bytesRead: streamed.read.bytes, bytes: job.source.bytes }, "read");
      return encoded;
    } catch (error) {
      const unreadable = error instanceof NotStreamable || (error instanceof BadInput && error.kind === "damaged");
      if (signal.aborted || !unreadable) throw error;
      log.info({ event: "convert.spooling", mode: streamed.mode, reason: error.message }, "streaming failed: spooling");
      await rm(join(workDir, "audio.mp3"), { force: true });
      await rm(join(workDir, "cover.jpg"), { force: true });
    }
  }
  const path = join(workDir, "input");
  context.metrics.bytesIn.inc(await context.files.saveToFile("videos", videoFileId, path, signal));
  signal.throwIfAborted();
  if (!streamed) log.info({ event: "convert.streamed", mode: "spooled" }, "converting from a copy");
  const encoded = await encode(context, job, { mode: "spooled", path }, workDir, options);
  await checkOutput(encoded.output, encoded.plan.spanSec, encoded.writtenSeconds);
  return encoded;
}

/**
 * The MP3 with its ID3 tag in front into GridFS `mp3s`, and the cover into `covers`, side by
 * side; each is recorded in `unclaimed` once stored, so a failure of the other leaves nothing.
 */
async function storeResult(context: ConverterContext, job: Job, encoded: Encoded, unclaimed: Unclaimed) {
  const { files } = context;
  const cover = encoded.cover ? await readFile(encoded.cover) : undefined;
  const { tags, chapters } = encoded.plan;
  const tag = id3Tag({ ...tags, chapters, ...(cover ? { cover } : {}) });
  const metadata = { owner: job.userId, jobId: job._id.toHexString() };
  const filename = mp3Filename(job.source.filename);
  const tagged = Readable.from(withTag(tag, encoded.output));
  const storingMp3 = files.upload("mp3s", tagged, { ...metadata, filename, contentType: "audio/mpeg" });
  const coverFile = { ...metadata, filename: `${filename.slice(0, -".mp3".length)}.jpg`, contentType: "image/jpeg" };
  const storingCover = cover ? files.upload("covers", Readable.from([cover]), coverFile) : undefined;
  const [mp3, stored] = await Promise.allSettled([storingMp3, storingCover]);
  if (mp3.status === "fulfilled") unclaimed.mp3 = mp3.value.id;
  if (stored.status === "fulfilled" && stored.value) unclaimed.cover = stored.value.id;
  if (mp3.status === "rejected") throw mp3.reason;
  if (stored.status === "rejected") throw stored.reason;
  return { mp3: mp3.value, ...(stored.value ? { cover: stored.value } : {}) };
}

async function* withTag(tag: Buffer, path: string) {
  yield tag;
  yield* createReadStream(path);
}

/** Writes a job's progress (percent) at most once a second; a lost write is caught up by the next. */
function progressWriter({ jobs }: ConverterContext, jobId: ObjectId) {
  let lastWrite = 0;
  return (percent: number) => {
    const now = Date.now();
    if (now - lastWrite < PROGRESS_INTERVAL_MS) return;
    lastWrite = now;
    void jobs.setProgress(jobId, percent).catch(() => {});
  };
}
