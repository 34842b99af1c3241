// The `options` part of bench/converter.bench.ts: what the options `cover` and `normalize`
// cost in the converter, against bare ffmpeg doing the same on the same file in the same
// run; and how close one-pass and two-pass loudnorm come to -16 LUFS and -1.5 dBTP on
// signals whose loudness moves, and at what cost (the converter uses one pass: BENCHMARKS.md).
import { join } from "node:path";
import { LOUDNESS_FILTER } from "../converter/transcode.ts";
import type { ConversionOptions } from "../lib/options.ts";
import { loudness, makeSpeechLikeVideo, run } from "../test/support/media.ts";
import { bareFfmpeg, bareFfmpegWithCover, cpuMs, ffmpegTime, median, report } from "./support.ts";

const BENCH = "converter";
/** The converter's mix before it measures loudness (converter/transcode.ts). */
const NORMALIZE = ["-af", `asetpts=PTS-STARTPTS,aformat=channel_layouts=mono|stereo,${LOUDNESS_FILTER}`];

/** Converts `path` with `options` in the converter: ms from the message to the `mp3` message. */
export type ConvertOnce = (path: string, options?: ConversionOptions) => Promise<number>;

/**
 * Converter and bare ffmpeg taking turns, `runs` times each, on the same `clip`: wall time
 * (median and best) and CPU time (the converter process with its children, `converterPid`;
 * bare ffmpeg as this process's child), which other work on the machine hardly changes.
 */
export async function optionCosts(
  convert: ConvertOnce,
  converterPid: number,
  { clip, clipSeconds, work, runs = 5 }: { clip: string; clipSeconds: number; work: string; runs?: number },
) {
  const bare = join(work, "bare-options.mp3");
  const coverAt = Math.min(clipSeconds * 0.1, 60); // where the converter takes its frame
  const wall: Record<string, number[]> = {};
  const cpu: Record<string, number[]> = {};
  const time = async (name: string, pid: number | "self", measure: () => Promise<number>) => {
    const before = cpuMs(pid);
    const ms = await measure();
    const after = cpuMs(pid);
    wall[name] = [...(wall[name] ?? []), ms];
    const used = after.children - before.children + (pid === "self" ? 0 : after.own - before.own);
    cpu[name] = [...(cpu[name] ?? []), used];
  };
  const pairs = [
    ["audio alone", { cover: "none" }, []],
    ["defaults (cover frame)", undefined, undefined],
    ["normalize", { normalize: true, cover: "none" }, NORMALIZE],
  ] as const;
  for (let i = 0; i < runs; i++)
    for (const [label, options, filter] of pairs) {
      await time(`converter, ${label}`, converterPid, () => convert(clip, options));
      const doingTheSame = () =>
        filter ? bareFfmpeg(clip, bare, [...filter]) : bareFfmpegWithCover(clip, bare, coverAt);
      await time(`bare ffmpeg, ${label}`, "self", doingTheSame);
    }
  const at = (name: string) => median(wall[name]!);
  const best = (name: string) => Math.min(...wall[name]!);
  const cpuAt = (name: string) => median(cpu[name]!);
  for (const [label] of pairs) {
    const [ours, theirs] = [`converter, ${label}`, `bare ffmpeg, ${label}`];
    const figure = `options, 5-min clip, ${label}`;
    report(
      BENCH,
      `${figure}: converter / bare ffmpeg (medians ${Math.round(at(ours))} / ${Math.round(at(theirs))} ms)`,
      at(ours) / at(theirs),
      "x",
    );
    report(BENCH, `${figure}: the same, best runs`, best(ours) / best(theirs), "x");
    report(
      BENCH,
      `${figure}: CPU, converter (all) / bare ffmpeg (${cpuAt(ours)} / ${cpuAt(theirs)} ms)`,
      cpuAt(ours) / cpuAt(theirs),
      "x",
    );
  }
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
