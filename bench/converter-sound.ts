// The `sound` part of bench/converter.bench.ts (issue 20): an MP4 whose sound lies in runs of
// its own is converted from only the GridFS chunks that hold the index and the sound
// (converter/audio-only.ts). The 1 GiB input of the `memory` part, remuxed two ways: in
// 1-second fragments (`-movflags +frag_keyframe -frag_duration 1000000`), and with one index
// and ~1 s chunks, as phones write (`-chunk_duration 1000000`). For each: the bytes the
// converter read out of the store (its `convert.read` log line) against the file's size, the
// time from message to MP3 against bare ffmpeg on a local copy and against reading the
// whole file out of the store, and the converter's peak RSS.
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { ObjectId } from "mongodb";
import { bareFfmpeg, ffmpegTime, MEDIA_DIR, report, resetPeak, type Service, sampleMemory } from "./support.ts";

const BENCH = "converter";

export interface SoundBench {
  /** The 1 GiB MP4 of the `memory` part. */
  big: string;
  /** A converter started with LOG_LEVEL=info, so its `convert.read` lines can be read. */
  converter: Service;
  store(path: string): Promise<ObjectId>;
  convert(id: ObjectId): Promise<number>;
  /** The ms to read the stored video of job `id` out of the store, bytes dropped. */
  readAll(id: ObjectId): Promise<number>;
  bareMp3: string;
  runs: number;
}

export async function soundReading({ big, converter, store, convert, readAll, bareMp3, runs }: SoundBench) {
  const remuxed = async (name: string, args: string[]) => {
    const path = join(MEDIA_DIR, name);
    if (!existsSync(path)) await ffmpegTime(["-i", big, "-map", "0", "-c", "copy", ...args, path]);
    return path;
  };
  const inputs = [
    {
      label: "1.01 GiB MP4 in 1 s fragments",
      path: await remuxed("big-fragments.mp4", ["-movflags", "+frag_keyframe", "-frag_duration", "1000000"]),
    },
    {
      label: "1.01 GiB MP4, sound in 1 s chunks (as phones write)",
      path: await remuxed("big-runs.mp4", [
        "-max_interleave_delta",
        "0",
        "-chunk_duration",
        "1000000",
        "-chunk_size",
        "100000000",
      ]),
    },
  ];
  for (const input of inputs) {
    for (let round = 0; round < runs; round++) {
      const id = await store(input.path);
      const readMs = await readAll(id);
      resetPeak(converter.pid);
      const sampler = sampleMemory([converter.pid], 50);
      const ms = await convert(id);
      const peak = sampler.stop().get(converter.pid)!;
      const read = readLogged(converter, id);
      const bareMs = await bareFfmpeg(input.path, bareMp3);
      const at = `${input.label} (run ${round + 1})`;
      report(BENCH, `${at}: mode`, read.mode === "audio" ? 1 : 0, "(1: the sound alone)");
      report(
        BENCH,
        `${at}: bytes read out of the store / the file`,
        (100 * read.bytesRead) / read.bytes,
        "%",
        "≤ 25 %",
      );
      report(BENCH, `${at}: message to mp3`, ms, "ms");
      report(BENCH, `${at}: reading the whole file out of the store / bare ffmpeg`, readMs, "ms");
      report(BENCH, `${at}: bare ffmpeg`, bareMs, "ms");
      report(BENCH, `${at}: converter / bare ffmpeg`, ms / bareMs, "x");
      report(BENCH, `${at}: peak RSS (converter process)`, Math.max(peak.hwm, peak.peakRss) / 1e6, "MB", "≤ 150 MB");
    }
  }
}

/** The converter's `convert.read` line for job `id`: its mode, the bytes it read, the file's. */
function readLogged(converter: Service, id: ObjectId) {
  for (const line of converter.logs.toReversed()) {
    if (!line.includes('"convert.read"') || !line.includes(id.toHexString())) continue;
    return JSON.parse(line) as { mode: string; bytesRead: number; bytes: number };
  }
  throw new Error(`no convert.read line for job ${id}`);
}
