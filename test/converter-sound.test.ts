// The sound alone (issue 20, converter/audio-only.ts): an MP4 whose sound lies in runs of
// its own is read from only the GridFS chunks that hold the index and the sound; the
// cover's keyframe alone (converter/keyframe.ts); an MPEG-TS file's length from its two
// ends (converter/ts-length.ts), so that it is piped. The
// stream the audio's ffmpeg reads must carry exactly the file's audio, every track of it,
// and a file whose index this cannot follow must still convert, read another way.
// Real MongoDB (MONGODB_URL or the stand-in), RabbitMQ and ffmpeg.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createReadStream, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ObjectId } from "mongodb";
import { extractCover } from "../converter/cover.ts";
import { inputOptions } from "../converter/inputs.ts";
import { keyframeFile } from "../converter/keyframe.ts";
import { childBoxes, find, type InnerBox, readMoof, readMoov } from "../converter/mp4-index.ts";
import { type StreamedSource, streamedSource } from "../converter/source.ts";
import { tsAudioLength } from "../converter/ts-length.ts";
import { converterBench } from "./support/converter-bench.ts";
import { waitForJob } from "./support/jobs.ts";
import { makeVideo, probe, run } from "./support/media.ts";

const bench = converterBench("sound-test");
const { tmp } = bench;

/** A keyframe a second, as cameras and phones make them. */
const EVERY_SECOND = { size: "640x360", noise: 20, encoder: ["libx264", "-preset", "ultrafast", "-g", "15"] };
const FRAGMENTS = ["-movflags", "+frag_keyframe", "-frag_duration", "1000000"];
const CHUNKS = ["-max_interleave_delta", "0", "-chunk_duration", "1000000", "-chunk_size", "100000000"];

let stored = 0;
async function store(path: string): Promise<ObjectId> {
  const file = { owner: "sound-test", filename: "clip.mp4", contentType: "video/mp4" };
  return (await bench.files.upload("videos", createReadStream(path), file)).id;
}

/** How the converter would read the stored `path`, and the stream its audio's ffmpeg gets, written to a file. */
async function soundOf(path: string): Promise<{ source: StreamedSource; sound: string }> {
  const signal = AbortSignal.timeout(30_000);
  const source = (await streamedSource(bench.files, await store(path), "video/mp4", signal))!;
  const sound = join(tmp, `sound-${++stored}.mp4`);
  const parts: Buffer[] = [];
  for await (const part of source.openAudio(signal)) parts.push(Buffer.from(part));
  writeFileSync(sound, Buffer.concat(parts));
  return { source, sound };
}

/** The decoded audio of one track, as a checksum. */
const audioOf = (file: string, track = 0) =>
  run(["ffmpeg", "-v", "error", "-i", file, "-map", `0:a:${track}`, "-f", "md5", "-"]);

const remux = async (path: string, args: string[]) => {
  const output = join(tmp, `remuxed-${++stored}.mp4`);
  await run(["ffmpeg", "-v", "error", "-y", "-i", path, "-map", "0", "-c", "copy", ...args, "-f", "mp4", output]);
  return output;
};

/** A 640×360 video with two audio tracks that tell apart: 440 Hz stereo, 880 Hz mono. */
async function twoTracks(seconds: number): Promise<string> {
  const output = join(tmp, `two-tracks-${++stored}.mkv`);
  const args = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", `testsrc=duration=${seconds}:size=640x360:rate=15`];
  args.push("-f", "lavfi", "-i", `sine=frequency=440:duration=${seconds}`);
  args.push("-f", "lavfi", "-i", `sine=frequency=880:duration=${seconds}`);
  args.push("-map", "0:v", "-map", "1:a", "-map", "2:a", "-vf", "noise=alls=20:allf=t");
  args.push(
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-g",
    "15",
    "-c:a",
    "aac",
    "-ac:a:0",
    "2",
    "-ac:a:1",
    "1",
    output,
  );
  await run(args);
  return output;
}

/**
 * The MP4 at `path` (index at the end) with its audio track's sample sizes in a compact
 * table (\`stz2\`, 16 bits each), which ffmpeg reads and converter/mp4-index.ts does not.
 */
function withCompactSizes(path: string): string {
  const bytes = readFileSync(path);
  const top = childBoxes(bytes, 0, bytes.length);
  const moov = top.find((box) => box.type === "moov")!;
  expect(moov).toBe(top.at(-1)!); // shrinking the index moves no sample
  const handler = (trak: InnerBox) => {
    const hdlr = find(bytes, trak, "mdia", "hdlr");
    return hdlr && bytes.toString("latin1", hdlr.body + 8, hdlr.body + 12);
  };
  const trak = childBoxes(bytes, moov.body, moov.end).find((box) => box.type === "trak" && handler(box) === "soun")!;
  const around = [
    moov,
    trak,
    ...["mdia", "minf", "stbl"].map((_, depth, path) => find(bytes, trak, ...path.slice(0, depth + 1))!),
  ];
  const stsz = find(bytes, trak, "mdia", "minf", "stbl", "stsz")!;
  const count = bytes.readUInt32BE(stsz.body + 8);
  const stz2 = Buffer.alloc(20 + count * 2);
  stz2.writeUInt32BE(stz2.length);
  stz2.write("stz2", 4, "latin1");
  stz2.writeUInt32BE(16, 12); // reserved (3 bytes) and the field size
  stz2.writeUInt32BE(count, 16);
  for (let sample = 0; sample < count; sample++)
    stz2.writeUInt16BE(bytes.readUInt32BE(stsz.body + 12 + sample * 4), 20 + sample * 2);
  const shrink = stsz.end - stsz.start - stz2.length;
  const out = Buffer.concat([bytes.subarray(0, stsz.start), stz2, bytes.subarray(stsz.end)]);
  for (const box of around) out.writeUInt32BE(box.end - box.start - shrink, box.start); // each box around it
  const output = join(tmp, `compact-${++stored}.mp4`);
  writeFileSync(output, out);
  return output;
}

describe("the sound alone, read out of the store", () => {
  for (const [layout, args] of [
    ["1 s fragments", FRAGMENTS],
    ["1 s chunks, as phones write", CHUNKS],
  ] as const) {
    test(`of an MP4 in ${layout} is the file's audio, with no video, from well under half the bytes`, async () => {
      const video = await remux(await makeVideo({ seconds: 8, ...EVERY_SECOND }), [...args]);
      const { source, sound } = await soundOf(video);
      expect(source.mode).toBe("audio");
      expect(await audioOf(sound)).toBe(await audioOf(video));
      expect((await probe(sound)).streams).toEqual(["audio:aac"]);
      // A chunk per cluster's first bytes up to the time, and the one cluster.
      expect(source.read.bytes).toBeLessThan(statSync(video).size * 0.6);
      if (layout === "1 s fragments") expect(source.durations!.audio[0]).toBeCloseTo(8, 0);
    });
  }

  for (const format of ["mkv", "webm"] as const) {
    test(`of a ${format === "mkv" ? "Matroska" : "WebM"} file is the file's audio, with no video`, async () => {
      const encoder = format === "webm" ? ["libvpx", "-b:v", "400k", "-deadline", "realtime"] : undefined;
      const video = await makeVideo({
        seconds: 6,
        format,
        size: "320x240",
        noise: 20,
        ...(encoder ? { encoder } : {}),
      });
      const source = (await streamedSource(
        bench.files,
        await store(video),
        `video/${format === "mkv" ? "matroska" : "webm"}`,
        AbortSignal.timeout(30_000),
      ))!;
      expect(source.mode).toBe("audio");
      const sound = join(tmp, `sound-${++stored}.${format}`);
      const parts: Buffer[] = [];
      for await (const part of source.openAudio(AbortSignal.timeout(30_000))) parts.push(Buffer.from(part));
      writeFileSync(sound, Buffer.concat(parts));
      expect(await audioOf(sound)).toBe(await audioOf(video));
      expect(statSync(sound).size).toBeLessThan(statSync(video).size / 4);
    });
  }

  test("keeps every audio track of a fragmented MP4, each the same as in the file", async () => {
    const video = await remux(await twoTracks(6), FRAGMENTS);
    const { source, sound } = await soundOf(video);
    expect(source.mode).toBe("audio");
    expect((await probe(sound)).streams).toEqual(["audio:aac", "audio:aac"]);
    expect(await audioOf(sound, 0)).toBe(await audioOf(video, 0));
    expect(await audioOf(sound, 1)).toBe(await audioOf(video, 1));
  });
});

describe("the cover's keyframe alone (converter/keyframe.ts)", () => {
  /** The first frame ffmpeg decodes, as a checksum of its pixels. */
  const frameOf = (file: string, seek: string[] = []) =>
    run([
      "ffmpeg",
      "-v",
      "error",
      ...seek,
      "-i",
      file,
      "-map",
      "0:v:0",
      ...["-fps_mode", "passthrough", "-frames:v", "1"],
      "-f",
      "md5",
      "-",
    ]);

  for (const [name, format, remuxed] of [
    ["MP4", "mp4", []],
    ["MOV", "mov", []],
    ["fragmented MP4", "mp4", FRAGMENTS],
  ] as const) {
    test(`is the frame a seek in the ${name} file finds: the keyframe at or before the time`, async () => {
      // B-frames (veryfast) give the samples composition offsets; a keyframe every 15 frames (1 s).
      const encoder = ["libx264", "-preset", "veryfast", "-g", "15", "-keyint_min", "15"];
      const made = await makeVideo({ seconds: 8, format, size: "320x240", encoder });
      const video = remuxed.length ? await remux(made, [...remuxed]) : made;
      const bytes = readFileSync(video);
      const top = childBoxes(bytes, 0, bytes.length);
      const moovBox = top.find((box) => box.type === "moov")!;
      const moov = bytes.subarray(moovBox.start, moovBox.end);
      const trak = childBoxes(moov, 8, moov.length).find((box) => box.type === "trak")!; // the video: stream 0
      const { defaults } = readMoov(moov);
      const fragments = top
        .filter((box) => box.type === "moof")
        .flatMap((box) => readMoof(bytes.subarray(box.start, box.end), box.start, defaults));
      expect(fragments.length > 0).toBe(remuxed.length > 0);
      for (const atSec of [0, 2.5, 5, 7.9]) {
        const frame = keyframeFile(moov, trak, atSec, Buffer.alloc(0), fragments)!;
        const one = join(tmp, `keyframe-${++stored}.${format}`);
        writeFileSync(one, Buffer.concat([frame.head, bytes.subarray(frame.sample.start, frame.sample.end)]));
        const seek = ["-noaccurate_seek", "-skip_frame", "nokey", "-ss", String(atSec)];
        expect(await frameOf(one)).toBe(await frameOf(video, seek));
        expect(frame.sample.end - frame.sample.start).toBeLessThan(bytes.length / 8); // one frame of 120
      }
    });
  }
});

describe("a Matroska file's cover from its clusters (converter/matroska-cover.ts)", () => {
  test("is a picture of the video at or before its time, from a fraction of the file's bytes", async () => {
    const encoder = ["libx264", "-preset", "veryfast", "-g", "15", "-keyint_min", "15"];
    const video = await makeVideo({ seconds: 12, format: "mkv", size: "640x360", noise: 20, encoder });
    const id = await store(video);
    for (const atSec of [0.8, 2.5, 6.5, 11]) {
      const signal = AbortSignal.timeout(30_000);
      const source = (await streamedSource(bench.files, id, "video/matroska", signal))!;
      const frame = (await source.openCover!({ stream: 0, atSec }, signal))!;
      // Counted from the start of what it gives: the clusters holding the time, never more than a few seconds.
      expect(frame.cover.atSec).toBeGreaterThanOrEqual(0);
      expect(frame.cover.atSec).toBeLessThan(Math.min(atSec, 6) + 0.001);
      const cover = join(tmp, `cluster-cover-${++stored}.jpg`);
      const options = { inputOptions: inputOptions("video/matroska", "pipe"), signal, output: cover };
      expect(await extractCover(frame.stream, frame.cover, options)).toBe(true);
      const size = await run([
        "ffprobe",
        "-v",
        "error",
        "-show_entries",
        "stream=width,height",
        "-of",
        "csv=p=0",
        cover,
      ]);
      expect(size.trim()).toBe("600,338");
      // A chunk per cluster's first bytes up to the time, and two clusters.
      expect(source.read.bytes).toBeLessThan(statSync(video).size * 0.6);
    }
  });
});

describe("an MPEG-TS file's length (converter/ts-length.ts)", () => {
  const lengthOf = (bytes: Buffer) => tsAudioLength(bytes.subarray(0, 1024 * 1024), bytes.subarray(-1024 * 1024));

  test("is its last audio time less its first, read from its two ends, across the 2^33 wrap too", async () => {
    for (const offset of [[], ["-output_ts_offset", "95440"]]) {
      // 95440 s: the times wrap round 2^33 ticks of 90 kHz (95443.7 s) three seconds in.
      const video = join(tmp, `clip-${++stored}.ts`);
      const args = ["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=duration=8:size=320x240:rate=15"];
      args.push("-f", "lavfi", "-i", "sine=duration=8", "-c:v", "mpeg2video", "-c:a", "mp2", ...offset, "-f", "mpegts");
      await run(["ffmpeg", ...args, video]);
      expect(lengthOf(readFileSync(video))).toBeCloseTo(8, 1);
    }
  });

  test("is unknown for bytes that are not a transport stream, or carry no audio times", async () => {
    expect(lengthOf(Buffer.from("#EXTM3U\n#EXT-X-ENDLIST\n".repeat(1000)))).toBeUndefined();
    const silent = join(tmp, `silent-${++stored}.ts`);
    await run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=duration=2", "-f", "mpegts", silent]);
    expect(lengthOf(readFileSync(silent))).toBeUndefined();
  });
});

describe("an MP4 whose index this cannot follow (compact sample sizes)", () => {
  let converter: Awaited<ReturnType<typeof bench.startConverter>>;
  beforeAll(async () => {
    converter = await bench.startConverter();
  });
  afterAll(() => converter?.stop());

  test("is read another way and still converts to the whole length", async () => {
    const video = withCompactSizes(await remux(await makeVideo({ seconds: 8, ...EVERY_SECOND }), CHUNKS));
    expect(await audioOf(video)).toBeTruthy(); // ffmpeg reads it
    const { source } = await soundOf(video);
    expect(source.mode).toBe("relocated");
    const id = await bench.queueUpload(createReadStream(video), "compact.mp4", "video/mp4");
    const job = await waitForJob(bench.jobs, id, ["done", "failed"], 60_000);
    expect(job.error).toBeUndefined();
    expect(job.status).toBe("done");
    const mp3 = await bench.saveFile("mp3s", job.audioFileId!, join(tmp, "compact.mp3"));
    expect((await probe(mp3)).durationSec).toBeCloseTo(8, 0);
  }, 90_000);

  test("whose sound is said to lie past the end of the file is read as it is, and the job ends on its first attempt", async () => {
    const video = await remux(await makeVideo({ seconds: 8, ...EVERY_SECOND }), [...CHUNKS, "-movflags", "+faststart"]);
    const bytes = readFileSync(video);
    const moov = childBoxes(bytes, 0, bytes.length).find((box) => box.type === "moov")!;
    const traks = childBoxes(bytes, moov.body, moov.end).filter((box) => box.type === "trak");
    const stco = find(bytes, traks[1]!, "mdia", "minf", "stbl", "stco")!; // the sound's chunk offsets
    bytes.writeUInt32BE(bytes.length + 100_000, stco.body + 8); // its first chunk: past the end
    const damaged = join(tmp, "past-the-end.mp4");
    writeFileSync(damaged, bytes);
    const source = await streamedSource(bench.files, await store(damaged), "video/mp4", AbortSignal.timeout(30_000));
    expect(source!.mode).toBe("piped"); // the file as it is: ffmpeg says what it makes of it
    const id = await bench.queueUpload(createReadStream(damaged), "past.mp4", "video/mp4");
    const job = await waitForJob(bench.jobs, id, ["done", "failed"], 60_000);
    // Whatever ffmpeg makes of it, the job ends on its first attempt: no store error to retry.
    expect(job.attempts).toBe(1);
  }, 90_000);
});
