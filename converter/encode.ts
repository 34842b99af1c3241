// ffmpeg and ffprobe on a spooled source, side by side. ffmpeg starts at once with the
// settings the job's options give (converter/plan.ts guessAudio): waiting for the probe
// first would cost every job one more process start. When the probe answers, the plan is
// made, and written on the job beside the work (the source's audio tracks, the options as
// applied); a plan that cannot be carried out (no such track, a start past the end, too
// long) stops ffmpeg through `verdict`, within milliseconds and before anything is stored;
// so does ffmpeg outlasting its time budget. A plan whose settings differ from the guess (another default
// track, an audio track that starts late under a trim) runs ffmpeg again with them. The
// cover's ffmpeg runs beside the audio's as soon as the plan names one.
import { join } from "node:path";
import type { Readable } from "node:stream";
import type { Job } from "../lib/jobs.ts";
import type { Logger } from "../lib/log.ts";
import type { ConverterContext } from "./context.ts";
import { extractCover } from "./cover.ts";
import { NotStreamable } from "./errors.ts";
import { overBudget, timeBudgetMs } from "./limits.ts";
import { guessAudio, type Plan, planConversion } from "./plan.ts";
import { probeSource, type SourceInfo } from "./probe.ts";
import { type Input, inputArgs, type StreamedSource } from "./source.ts";
import { type AudioSettings, transcode } from "./transcode.ts";

export interface Encoded {
  /** The bare MP3 (no tag yet). */
  output: string;
  /** ffmpeg's count of the seconds it wrote. */
  writtenSeconds: number;
  plan: Plan;
  /** The cover JPEG, if the plan named one and it could be made. */
  cover?: string;
}

export interface EncodeOptions {
  signal: AbortSignal;
  log: Logger;
  /** Called with the share of the span written (0 to 1), once the span is known. */
  onProgress: (fraction: number) => void;
}

/** The guess was wrong: the first ffmpeg stops, and runs again with the plan's settings. */
class WrongGuess extends Error {
  override name = "WrongGuess";
}

export async function encode(
  context: ConverterContext,
  job: Job,
  input: Input,
  workDir: string,
  { signal, log, onProgress }: EncodeOptions,
): Promise<Encoded> {
  const { config } = context;
  const output = join(workDir, "audio.mp3");
  const opened = inputArgs(input, job.source.contentType).options; // the one demuxer, the one protocol
  const verdict = new AbortController(); // bad input found by the plan, the store away, or the time budget passed
  // Each process reads its own stream of a streamed source: ffprobe and the cover stop early.
  const bytes = (stop: AbortSignal) => (input.mode === "spooled" ? input.path : input.open(stop));
  const probed = input.mode === "spooled" ? input.path : input.openProbe(signal);
  const probing = probeSource(probed, { contentType: job.source.contentType, signal }).then((probed) => {
    const source = input.mode === "spooled" ? probed : withDurations(probed, input);
    if (input.mode !== "spooled" && source.tracks.some((track) => !track.durationSec))
      throw new NotStreamable("the stream does not say how long the audio lasts");
    return source;
  });
  const planning = probing.then((source) => planConversion(job, source, config));
  const recording = recordProbe(context, job, probing, planning);
  recording.catch((error) => verdict.abort(error));
  const guess = guessAudio(job.options, config);
  const followed = followPlan(planning, guess, verdict);
  const audio = (stop: AbortSignal) => (input.mode === "spooled" ? input.path : input.openAudio(stop));
  const run = (settings: AudioSettings, ...signals: AbortSignal[]) =>
    transcode(audio(AbortSignal.any([signal, verdict.signal, ...signals])), output, {
      ...settings,
      inputOptions: opened,
      signal: AbortSignal.any([signal, verdict.signal, ...signals]),
      onProgress: (written) => followed.spanSec && onProgress(written / followed.spanSec),
    });
  const stopCover = new AbortController();
  const coverSignal = AbortSignal.any([signal, verdict.signal, stopCover.signal]);
  const covering = planning.then(
    (plan) =>
      coverOf(input, plan, () => bytes(coverSignal), { inputOptions: opened, workDir, signal: coverSignal, log }),
    () => undefined,
  );
  try {
    const [planned, encoded] = await Promise.allSettled([planning, run(guess, followed.wrongGuess)]);
    await recording; // the tracks are on the job before it fails or goes on
    if (planned.status === "rejected") throw planned.reason; // names the cause better than ffmpeg's failure
    const plan = planned.value;
    let writtenSeconds: number;
    if (sameSettings(plan.audio, guess)) {
      if (encoded.status === "rejected") throw encoded.reason;
      writtenSeconds = encoded.value;
    } else {
      log.info({ event: "convert.rerun", guessed: guess, planned: plan.audio }, "ffmpeg runs again with the plan");
      writtenSeconds = await run(plan.audio);
    }
    // ffmpeg may finish before the probe told the span, its progress unreported: the end is said once.
    if (plan.spanSec) onProgress(writtenSeconds / plan.spanSec);
    const cover = await covering;
    return { output, writtenSeconds, plan, ...(cover ? { cover } : {}) };
  } finally {
    followed.stop();
    stopCover.abort(); // a failed encode leaves no cover ffmpeg behind
    await covering;
  }
}

/**
 * Once planned: the span (for progress), the guess checked (`wrongGuess` is aborted when the
 * plan's settings differ), the time budget started; a plan that cannot be made is the verdict.
 */
function followPlan(planning: Promise<Plan>, guess: AudioSettings, verdict: AbortController) {
  const started = performance.now();
  const wrongGuess = new AbortController();
  let budget: ReturnType<typeof setTimeout> | undefined;
  const followed = { spanSec: 0, wrongGuess: wrongGuess.signal, stop: () => clearTimeout(budget) };
  planning.then(
    (plan) => {
      followed.spanSec = plan.spanSec;
      if (!sameSettings(plan.audio, guess)) wrongGuess.abort(new WrongGuess());
      const left = timeBudgetMs(plan.spanSec) - (performance.now() - started);
      budget = setTimeout(() => verdict.abort(overBudget(plan.spanSec)), Math.max(0, left));
    },
    (error) => verdict.abort(error),
  );
  return followed;
}

/**
 * Writes on the job, beside the work, the source's audio tracks once probed and the options
 * as applied once planned (a plan that cannot be made still leaves the tracks to see).
 */
async function recordProbe(
  { jobs }: ConverterContext,
  job: Job,
  probing: Promise<SourceInfo>,
  planning: Promise<Plan>,
): Promise<void> {
  const [source, plan] = await Promise.allSettled([probing, planning]);
  if (source.status === "rejected") return; // nothing found; the probe's failure is the job's
  const applied = plan.status === "fulfilled" ? plan.value.applied : undefined;
  await jobs.recordProbe(job._id, source.value.tracks, applied);
}

/**
 * The plan's cover: from the frame's bytes alone where the file says where they are (an MP4's
 * keyframe, a Matroska cluster: StreamedSource.openCover), else (or if that fails) from the stream.
 */
async function coverOf(input: Input, plan: Plan, stream: () => string | Readable, options: CoverOptions) {
  const wanted = plan.cover;
  if (!wanted || !("atSec" in wanted) || input.mode === "spooled" || !input.openCover)
    return makeCover(stream, plan, options);
  const frame = await input.openCover(wanted, options.signal).catch(() => null); // the stream's cover will do
  const alone = frame && (await makeCover(() => frame.stream, { ...plan, cover: frame.cover }, options));
  return alone || options.signal.aborted ? alone : makeCover(stream, plan, options);
}

interface CoverOptions {
  inputOptions: string[];
  workDir: string;
  signal: AbortSignal;
  log: Logger;
}

/** The plan's cover as a JPEG in `workDir`, or undefined: none planned, none to be had (logged), or stopped. */
async function makeCover(
  input: () => string | Readable,
  plan: Plan,
  { inputOptions, workDir, signal, log }: CoverOptions,
): Promise<string | undefined> {
  if (!plan.cover) return undefined;
  const output = join(workDir, "cover.jpg");
  try {
    return (await extractCover(input(), plan.cover, { inputOptions, output, signal })) ? output : undefined;
  } catch (error) {
    if (!signal.aborted) log.info({ event: "cover.skipped", reason: (error as Error).message }, "no cover");
    return undefined;
  }
}

/**
 * The probe's answer with the lengths the source told, which ffprobe reading a pipe does not
 * see: a fragmented MP4's index (ffprobe sees the first fragment only) when it names the same
 * audio tracks, an MPEG-TS file's first and last audio times (ffprobe sees none) for each
 * track that has no length of its own.
 */
function withDurations(source: SourceInfo, { durations, lengthSec }: StreamedSource): SourceInfo {
  if (lengthSec) {
    const tracks = source.tracks.map((track) =>
      track.durationSec ? track : { ...track, durationSec: round(lengthSec) },
    );
    const video =
      source.video && !source.video.durationSec ? { ...source.video, durationSec: round(lengthSec) } : source.video;
    return { ...source, tracks, ...(video ? { video } : {}) };
  }
  if (!durations || durations.audio.length !== source.tracks.length) return source;
  const tracks = source.tracks.map((track, index) => ({ ...track, durationSec: round(durations.audio[index]!) }));
  const video =
    source.video && durations.video ? { ...source.video, durationSec: round(durations.video) } : source.video;
  return { ...source, tracks, ...(video ? { video } : {}) };
}

const round = (seconds: number) => Math.round(seconds * 1000) / 1000;

const sameSettings = (a: AudioSettings, b: AudioSettings) => JSON.stringify(a) === JSON.stringify(b);
