// Conversion without the copy (issue 20): ffmpeg reads the video as it comes out of GridFS
// wherever the container allows (converter/source.ts): Matroska, WebM and MP4 with the
// index first through a pipe, an MP4 with the index at the end with its index sent first
// (converter/faststart.ts), an MP4 whose sound lies in runs of its own from only the
// chunks holding it (converter/audio-only.ts; test/converter-sound.test.ts), the rest
// spooled. The converter runs in-process with real ffmpeg, RabbitMQ and MongoDB
// (MONGODB_URL or the stand-in); the temp dir is watched.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createReadStream, mkdtempSync, readFileSync, statSync, watch } from "node:fs";
import { join } from "node:path";
import { fileTypeFromBuffer } from "file-type";
import type { ObjectId } from "mongodb";
import { movLayout, relocatedIndex } from "../converter/faststart.ts";
import type { Job } from "../lib/jobs.ts";
import { QUEUES } from "../lib/queue.ts";
import { converterBench } from "./support/converter-bench.ts";
import { processesFor } from "./support/hostile.ts";
import { drainQueue, settle, waitForJob } from "./support/jobs.ts";
import { makeVideo, probe, run } from "./support/media.ts";

const bench = converterBench("streaming-test");
const { tmp, entries, startConverter } = bench;

/** The converter's log entries for a job with `event`, once there are `count` of them. */
async function logged(id: ObjectId, event: string, count = 1) {
  const match = (entry: Record<string, unknown>) => entry.event === event && entry.jobId === id.toHexString();
  const found = await settle(
    async () => entries.filter(match),
    (matching) => matching.length >= count,
    30_000,
  );
  if (found.length < count) throw new Error(`no ${event} for job ${id}`);
  return found;
}

/** A job as the gateway leaves it, queued with the type its first bytes show. */
async function queueJob(path: string): Promise<ObjectId> {
  const contentType = (await fileTypeFromBuffer(readFileSync(path).subarray(0, 4100)))?.mime ?? "video/mp4";
  const filename = `clip.${path.split(".").pop()}`;
  return bench.queueUpload(createReadStream(path), filename, contentType);
}

/** Every file the converter's temp dir gets while watched: its name and the most bytes it was seen with. */
function watchTempDir() {
  const seen = new Map<string, number>();
  const watcher = watch(tmp, { recursive: true }, (_, name) => {
    if (!name) return;
    const size = statSync(join(tmp, name), { throwIfNoEntry: false });
    if (size?.isFile()) seen.set(name, Math.max(seen.get(name) ?? 0, size.size));
    else if (!seen.has(name)) seen.set(name, 0);
  });
  return {
    stop() {
      watcher.close();
      return seen;
    },
  };
}

const downloadMp3 = (job: Job) =>
  bench.saveFile("mp3s", job.audioFileId!, join(mkdtempSync(join(tmp, "mp3-")), "out.mp3"));

/** 640×360 H.264 with a keyframe every second (15 frames): ~2 MB a second with the noise. */
const EVERY_SECOND = { size: "640x360", encoder: ["libx264", "-preset", "ultrafast", "-g", "15"] };

describe("a video is read as it comes out of the store where its container allows", () => {
  let converter: Awaited<ReturnType<typeof startConverter>>;
  beforeAll(async () => {
    converter = await startConverter();
  });
  afterAll(() => converter?.stop());

  // Big enough (~6 MB) that a copy of it would stand out against the MP3 (~0.2 MB). The last
  // figure: the most of the file read out of the store, where it is known.
  const cases = [
    // Matroska: the file is read as it is; ffmpeg gets its sound alone (converter/matroska-sound.ts).
    ["MKV", { format: "mkv" }, "audio", undefined],
    ["WebM", { format: "webm", noise: 0 }, "audio", undefined], // VP8 on noise is slow to make: a small file
    // An MP4 is read once: ffprobe takes the index, the cover its keyframe, ffmpeg the sound alone.
    ["MP4 with the index first", { format: "mp4", faststart: true }, "audio", 1.05],
    ["MP4 with the index at the end", { format: "mp4" }, "audio", 1.05],
    ["MOV with the index at the end", { format: "mov" }, "audio", 1.05],
    // A keyframe a second, as cameras and phones make them: only the sound's chunks are read.
    ["MP4 in 1 s fragments", { format: "mp4", runs: "fragments", ...EVERY_SECOND }, "audio", 0.35],
    [
      "MP4 with the sound in 1 s runs, as phones write it",
      { format: "mp4", runs: "chunks", ...EVERY_SECOND },
      "audio",
      0.35,
    ],
    // Fragments smaller than a chunk: every chunk holds sound; its length told by the fragments.
    // (A 1.5 MB file: the head, the index and the keyframe, a chunk each, weigh.)
    ["MP4 in small fragments", { format: "mp4", runs: "fragments", size: "160x90" }, "audio", 1.4],
    ["MPEG-TS", { format: "ts", size: "640x360" }, "piped", undefined], // its length from its first and last audio times
    ["AVI", { format: "avi" }, "spooled", undefined],
  ] as const;

  for (const [name, options, mode, mostRead] of cases) {
    test(`${name} is converted ${mode}${mode === "spooled" ? "" : ", the temp dir never holding more than the MP3 and 1 MiB"}`, async () => {
      const video = await makeVideo({ seconds: 8, size: "320x240", noise: 20, ...options });
      const watched = watchTempDir();
      const id = await queueJob(video);
      const job = await waitForJob(bench.jobs, id, ["done", "failed"], 60_000);
      const seen = watched.stop();
      expect(job.error).toBeUndefined();
      expect(job.status).toBe("done");
      const [streamed] = await logged(id, "convert.streamed");
      expect(streamed!.mode).toBe(mode);
      if (mostRead) {
        const [read] = await logged(id, "convert.read");
        expect(read!.bytes).toBe(statSync(video).size);
        expect((read!.bytesRead as number) / statSync(video).size).toBeLessThan(mostRead);
      }
      const mp3 = await downloadMp3(job);
      const probed = await probe(mp3);
      expect(probed.streams).toEqual(["audio:mp3", "video:mjpeg"]); // the audio, and a frame as its cover
      expect(probed.durationSec).toBeCloseTo((await probe(video)).durationSec, 0);
      const names = [...seen.keys()].map((path) => path.split("/").pop());
      if (mode === "spooled") {
        expect(names).toContain("input"); // the watch sees a spool when there is one
        return;
      }
      expect(names).not.toContain("input");
      expect(Math.max(0, ...seen.values())).toBeLessThanOrEqual(statSync(mp3).size + 1024 * 1024);
      if (options.format !== "webm") expect(statSync(video).size).toBeGreaterThan(statSync(mp3).size + 1024 * 1024);
    }, 90_000);
  }
});

describe("a streamed conversion stopped midway", () => {
  test("is handed back cleanly: no ffmpeg left, no temp dir, and the next worker converts it", async () => {
    const video = await makeVideo({ format: "mkv", seconds: 240, size: "64x36" });
    const first = await startConverter({ SHUTDOWN_GRACE_MS: "0", MP3_QUALITY: "0" });
    const id = await queueJob(video);
    const running = await settle(
      async () => processesFor(id.toHexString()).filter((process) => process.endsWith("ffmpeg")),
      (found) => found.length > 0,
      30_000,
    );
    expect(running.length).toBeGreaterThan(0);
    await first.stop();
    await logged(id, "job.handed_back");
    expect((await logged(id, "convert.streamed"))[0]!.mode).toBe("audio");
    expect(
      await settle(
        async () => processesFor(id.toHexString()),
        (left) => left.length === 0,
      ),
    ).toEqual([]);
    expect((await bench.jobs.get(id))!.attempts).toBe(0);
    const next = await startConverter({ MP3_QUALITY: "0" });
    const job = await waitForJob(bench.jobs, id, ["done", "failed"], 120_000);
    await next.stop();
    expect(job.status).toBe("done");
    await drainQueue(bench.vhost.url, QUEUES.mp3, 1);
  }, 180_000);
});

describe("the index moved to the front (converter/faststart.ts)", () => {
  const layoutOf = (bytes: Buffer) =>
    movLayout(bytes.length, async (start, end) => bytes.subarray(start, end), 64 * 1024);

  test("gives ffmpeg, reading a pipe, the same audio as the file", async () => {
    const path = await makeVideo({ format: "mp4", seconds: 3 });
    const bytes = readFileSync(path);
    const layout = (await layoutOf(bytes))!;
    expect(layout.moov.start).toBeGreaterThan(layout.mdat.start);
    const moov = bytes.subarray(layout.moov.start, layout.moov.start + layout.moov.size);
    const index = relocatedIndex(moov, layout)!;
    const moved = join(tmp, "moved.mp4");
    await Bun.write(
      moved,
      Buffer.concat([
        bytes.subarray(0, layout.mdat.start),
        index,
        bytes.subarray(layout.mdat.start, layout.moov.start),
      ]),
    );
    const audioOf = (file: string) => run(["ffmpeg", "-v", "error", "-i", file, "-map", "0:a", "-f", "md5", "-"]);
    expect(await audioOf(moved)).toBe(await audioOf(path));
    expect((await layoutOf(readFileSync(moved)))!.moov.start).toBeLessThan(layout.mdat.start + 1);
  });

  test("is refused (the file is spooled) when an offset points outside the samples or a table overruns its box", async () => {
    const path = await makeVideo({ format: "mp4", seconds: 3 });
    const bytes = readFileSync(path);
    const layout = (await layoutOf(bytes))!;
    const moov = Buffer.from(bytes.subarray(layout.moov.start, layout.moov.start + layout.moov.size));
    const stco = moov.indexOf("stco");
    expect(stco).toBeGreaterThan(0);
    const outside = Buffer.from(moov);
    outside.writeUInt32BE(layout.moov.start + 10, stco + 12); // the first offset: inside the index itself
    expect(relocatedIndex(outside, layout)).toBeNull();
    const overrun = Buffer.from(moov);
    overrun.writeUInt32BE(0x10000000, stco + 8); // the count: far more entries than the box holds
    expect(relocatedIndex(overrun, layout)).toBeNull();
  });
});
