// The two steps of an attempt: a link job's download, then the conversion proper (the
// video spooled to a temp dir, ffmpeg with ffprobe beside it, the MP3 checked, stored in
// GridFS `mp3s`, the job marked done and the outcome announced).
import { createReadStream } from "node:fs";
import { join } from "node:path";
import type { ObjectId } from "mongodb";
import { mp3Filename } from "../lib/files.ts";
import type { Job } from "../lib/jobs.ts";
import type { Logger } from "../lib/log.ts";
import { checkOutput } from "./check.ts";
import { type ConverterContext, publishOutcome } from "./context.ts";
import { downloadVideo } from "./download.ts";
import { BadInput } from "./errors.ts";
import { inputOptions } from "./inputs.ts";
import { dropUnclaimedMp3, removeSourceVideo, removeStrayMp3s } from "./leftovers.ts";
import { overBudget, timeBudgetMs } from "./limits.ts";
import { probeSource } from "./probe.ts";
import { transcode } from "./transcode.ts";
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
  const { config, files, jobs, metrics } = context;
  const started = performance.now();
  const workDir = await makeJobDir(config.TMP_DIR, job._id.toHexString());
  let unclaimed: ObjectId | undefined; // an MP3 stored that the job does not point to yet
  try {
    if (!job.videoFileId) throw new BadInput("the job has no video");
    const { output, durationSec } = await encode(context, job, job.videoFileId, workDir, signal);
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
    await removeStrayMp3s(context, job._id, stored.id, jobLog);
    metrics.bytesOut.inc(stored.bytes);
    metrics.seconds.observe((performance.now() - started) / 1000);
    await publishOutcome(context, job._id, "done");
    if (!config.KEEP_VIDEOS) await removeSourceVideo(context, job, jobLog);
    metrics.outcomes.inc({ outcome: "done" });
    const seconds = (performance.now() - started) / 1000;
    jobLog.info({ event: "job.converted", bytes: stored.bytes, durationSec, seconds }, "converted");
  } finally {
    // If the store is away this leaves the file; the attempt that finishes the job removes it.
    if (unclaimed) await dropUnclaimedMp3(context, job._id, unclaimed).catch(() => {});
    await removeJobDir(workDir);
  }
}

/** Spools the video, runs ffprobe beside ffmpeg, checks the MP3; answers its path and length. */
async function encode(
  context: ConverterContext,
  job: Job,
  videoFileId: ObjectId,
  workDir: string,
  signal: AbortSignal,
) {
  const { config, files, metrics } = context;
  const input = join(workDir, "input");
  const output = join(workDir, "output.mp3");
  // Spool to a file: an MP4 with its index at the end cannot be read from a pipe.
  metrics.bytesIn.inc(await files.saveToFile("videos", videoFileId, input));
  signal.throwIfAborted();
  const opened = inputOptions(job.source.contentType); // the one demuxer, the file protocol alone
  // ffprobe runs beside ffmpeg rather than before it: its answer is needed only for the
  // length limit, progress and the check, and waiting for it cost ~60 ms per job. A probe
  // that finds bad input (or too long an audio) stops ffmpeg through `verdict`, within
  // milliseconds and before anything is stored; so does ffmpeg outlasting its time budget.
  const verdict = new AbortController();
  const started = performance.now();
  let budget: ReturnType<typeof setTimeout> | undefined;
  const probing = probeSource(input, {
    contentType: job.source.contentType,
    maxAudioSeconds: config.MAX_AUDIO_SECONDS,
    signal,
  });
  let audioSeconds = 0; // known once the probe answers; until then no progress is shown
  probing.then(
    (source) => {
      audioSeconds = source.audioSeconds;
      const left = timeBudgetMs(audioSeconds) - (performance.now() - started);
      budget = setTimeout(() => verdict.abort(overBudget(audioSeconds)), Math.max(0, left));
    },
    (error) => verdict.abort(error),
  );
  const from = job.source.kind === "url" ? DOWNLOAD_SHARE : 0;
  const report = progressWriter(context, job._id);
  const encoding = transcode(input, output, {
    inputOptions: opened,
    quality: config.MP3_QUALITY,
    bitrateKbps: config.MP3_BITRATE_KBPS,
    signal: AbortSignal.any([signal, verdict.signal]),
    onProgress: (written) => audioSeconds && report(Math.min(99, from + (written / audioSeconds) * (100 - from))),
  });
  const [probe, encoded] = await Promise.allSettled([probing, encoding]);
  clearTimeout(budget);
  if (probe.status === "rejected") throw probe.reason; // names the cause better than ffmpeg's failure
  if (encoded.status === "rejected") throw encoded.reason;
  await checkOutput(output, probe.value, encoded.value);
  return { output, durationSec: encoded.value };
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
