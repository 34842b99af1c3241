// The `options` part of bench/converter.bench.ts: what the options `cover` and `normalize`
// cost in the converter, against bare ffmpeg doing the same on the same file in the same
// run; and how close one-pass and two-pass loudnorm come to -16 LUFS and -1.5 dBTP on
// signals whose loudness moves, and at what cost (the converter uses one pass: BENCHMARKS.md).
import { join } from "node:path";
import { LOUDNESS_FILTER } from "../converter/transcode.ts";
import type { ConversionOptions } from "../lib/options.ts";
import { loudness, makeSpeechLikeVideo, run } from "../test/support/media.ts";
import { bareFfmpeg, bareFfmpegWithCover, ffmpegTime, median, report } from "./support.ts";

const BENCH = "converter";
/** The converter's mix before it measures loudness (converter/transcode.ts). */
const NORMALIZE = ["-af", `asetpts=PTS-STARTPTS,aformat=channel_layouts=mono|stereo,${LOUDNESS_FILTER}`];

/** Converts `path` with `options` in the converter: ms from the message to the `mp3` message. */
export type ConvertOnce = (path: string, options?: ConversionOptions) => Promise<number>;

/** Converter and bare ffmpeg taking turns, `runs` times each, on the same `clip`. */
export async function optionCosts(convert: ConvertOnce, clip: string, work: string, clipSeconds: number, runs = 5) {
  const bare = join(work, "bare-options.mp3");
  const coverAt = Math.min(clipSeconds * 0.1, 60); // where the converter takes its frame
  const times: Record<string, number[]> = {};
  const time = async (name: string, measure: () => Promise<number>) => {
    const ms = await measure();
    times[name] = [...(times[name] ?? []), ms];
  };
  for (let i = 0; i < runs; i++) {
    await time("converter, cover none", () => convert(clip, { cover: "none" }));
    await time("bare, audio alone", () => bareFfmpeg(clip, bare));
    await time("converter, defaults (cover frame)", () => convert(clip));
    await time("bare, frame then audio with it", () => bareFfmpegWithCover(clip, bare, coverAt));
    await time("converter, normalize", () => convert(clip, { normalize: true, cover: "none" }));
    await time("bare, normalize", () => bareFfmpeg(clip, bare, NORMALIZE));
  }
  const at = (name: string) => median(times[name]!);
  for (const name of Object.keys(times))
    report(BENCH, `options, 5-min clip: ${name} (median of ${runs})`, at(name), "ms");
  const pairs = [
    ["audio alone", "converter, cover none", "bare, audio alone"],
    ["defaults (cover frame)", "converter, defaults (cover frame)", "bare, frame then audio with it"],
    ["normalize", "converter, normalize", "bare, normalize"],
  ];
  const best = (name: string) => Math.min(...times[name]!);
  for (const [label, ours, theirs] of pairs) {
    report(
      BENCH,
      `options, 5-min clip: ${label}, converter / bare ffmpeg doing the same`,
      at(ours!) / at(theirs!),
      "x",
    );
    report(BENCH, `options, 5-min clip: ${label}, the same, best runs`, best(ours!) / best(theirs!), "x");
  }
  report(
    BENCH,
    "options: the cover's cost in the converter",
    at("converter, defaults (cover frame)") - at("converter, cover none"),
    "ms",
  );
  report(
    BENCH,
    "options: the cover's cost by bare ffmpeg",
    at("bare, frame then audio with it") - at("bare, audio alone"),
    "ms",
  );
  report(
    BENCH,
    "options: normalize's cost in the converter",
    at("converter, normalize") - at("converter, cover none"),
    "ms",
  );
}

/**
 * One pass (dynamic mode, the converter's) against two (measure, then linear mode with the
 * measurements) on two signals: speech-like (loud and quiet by turns, twice a second) and
 * long quiet passages (5 s loud in every 30). Each MP3 is measured by `ebur128`.
 */
export async function loudnormAccuracy(work: string, seconds = 120) {
  const speech = await makeSpeechLikeVideo({ seconds, gainDb: -14 });
  const passages = join(work, "passages.mkv");
  const pattern = `anoisesrc=color=brown:duration=${seconds}:amplitude=0.5:seed=3,volume='0.03+0.97*lt(mod(t,30),5)':eval=frame`;
  await run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", pattern, "-c:a", "pcm_s16le", passages]);
  for (const [name, source] of [
    ["speech-like", speech],
    ["quiet passages", passages],
  ] as const) {
    const out = join(work, "loudnorm.mp3");
    const onePassMs = await ffmpegTime(["-i", source, "-vn", ...NORMALIZE, "-c:a", "libmp3lame", "-q:a", "2", out]);
    const one = await loudness(out);
    const twoPassMs = await twoPass(source, out);
    const two = await loudness(out);
    const label = `loudnorm, ${seconds} s ${name}`;
    report(BENCH, `${label}, one pass: integrated`, one.integratedLufs, "LUFS", "-16 ± 1");
    report(BENCH, `${label}, one pass: true peak`, one.truePeakDb, "dBTP", "≤ -1.5");
    report(BENCH, `${label}, one pass: time`, onePassMs, "ms");
    report(BENCH, `${label}, two passes: integrated`, two.integratedLufs, "LUFS", "-16 ± 1");
    report(BENCH, `${label}, two passes: true peak`, two.truePeakDb, "dBTP", "≤ -1.5");
    report(BENCH, `${label}, two passes: time`, twoPassMs, "ms");
  }
}

/** loudnorm's two passes: measure (JSON on stderr), then normalise linearly with the measurements. */
async function twoPass(source: string, output: string): Promise<number> {
  const started = performance.now();
  const measuring = `${NORMALIZE[1]}:print_format=json`;
  const child = Bun.spawn(
    ["ffmpeg", "-hide_banner", "-nostdin", "-i", source, "-vn", "-af", measuring, "-f", "null", "-"],
    {
      stdout: "ignore",
      stderr: "pipe",
    },
  );
  const err = await new Response(child.stderr).text();
  if ((await child.exited) !== 0) throw new Error(`loudnorm's first pass failed: ${err.slice(-500)}`);
  const measured = JSON.parse(err.slice(err.lastIndexOf("{"), err.lastIndexOf("}") + 1)) as Record<string, string>;
  const given = `measured_I=${measured.input_i}:measured_TP=${measured.input_tp}:measured_LRA=${measured.input_lra}`;
  const second = `${NORMALIZE[1]}:${given}:measured_thresh=${measured.input_thresh}:offset=${measured.target_offset}:linear=true`;
  await ffmpegTime(["-i", source, "-vn", "-af", second, "-c:a", "libmp3lame", "-q:a", "2", output]);
  return performance.now() - started;
}
