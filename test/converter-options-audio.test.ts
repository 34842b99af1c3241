// The conversion options (issue 17) that shape the audio, as the converter applies them,
// measured on the MP3 it stores: bit rate, quality, trim, track, channels, loudness, and the
// options written back on the job as applied with the source's audio tracks. Real ffmpeg,
// RabbitMQ (a vhost of its own) and MongoDB (MONGODB_URL or the stand-in); the bench
// (test/support/options-bench.ts) queues jobs the way the gateway leaves them. Tags, cover,
// chapters and audio-only sources are converter-options-tags.test.ts's.
import { beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { join } from "node:path";
import { fileTypeFromFile } from "file-type";
import { encode } from "../converter/encode.ts";
import {
  loudness,
  makeChapteredVideo,
  makeSpeechLikeVideo,
  makeTwoTrackVideo,
  makeVideo,
  run,
  toneFrequency,
} from "./support/media.ts";
import { audioStream, optionsBench, seconds } from "./support/options-bench.ts";

const { bench, outputs, convert, convertFailing } = optionsBench("options-audio");
const { tmp, log, entries, startConverter } = bench;
let converter: Awaited<ReturnType<typeof startConverter>>;

beforeAll(async () => {
  converter = await startConverter();
});
bench.beforeTeardown(() => converter?.stop());

describe("bit rate and quality", () => {
  test("bitrate 128 makes a constant 128 kbit/s MP3", async () => {
    const { job, probed } = await convert(await makeVideo({ seconds: 3 }), "cbr.mp4", { bitrate: 128 });
    expect(Number(audioStream(probed).bit_rate)).toBe(128_000); // the file's would count the tag and cover too
    expect(job.options).toMatchObject({ bitrate: 128 });
    expect(job.options?.quality).toBeUndefined();
  });

  test("quality 0 makes a bigger MP3 than quality 9", async () => {
    const video = await makeSpeechLikeVideo({ seconds: 4 });
    const best = await convert(video, "best.mkv", { quality: 0, cover: "none" });
    const smallest = await convert(video, "smallest.mkv", { quality: 9, cover: "none" });
    expect(best.job.options).toMatchObject({ quality: 0 });
    expect(smallest.job.options).toMatchObject({ quality: 9 });
    expect(best.job.audio!.bytes).toBeGreaterThan(smallest.job.audio!.bytes * 2);
  });
});

describe("trim", () => {
  test("start and end cut the MP3 to the span, and the chapters with it", async () => {
    const video = await makeChapteredVideo({
      seconds: 6,
      chapters: [
        { startSec: 0, endSec: 2, title: "One" },
        { startSec: 2, endSec: 4, title: "Two" },
        { startSec: 4, endSec: 6, title: "Three" },
      ],
    });
    const { job, probed } = await convert(video, "trimmed.mp4", { start: 1, end: 3.5 });
    expect(Math.abs(seconds(probed) - 2.5)).toBeLessThan(0.1);
    expect(Math.abs(job.audio!.durationSec - 2.5)).toBeLessThan(0.1);
    expect(job.options).toMatchObject({ start: 1, end: 3.5 });
    expect(
      probed.chapters.map((chapter) => [Number(chapter.start_time), Number(chapter.end_time), chapter.tags?.title]),
    ).toEqual([
      [0, 1, "One"],
      [1, 2.5, "Two"],
    ]);
  });

  test("an end past the audio is clamped to it", async () => {
    const { job, probed } = await convert(await makeVideo({ seconds: 3 }), "clamped.mp4", { start: 0.5, end: 100 });
    expect(Math.abs(seconds(probed) - 2.5)).toBeLessThan(0.1);
    expect(job.options?.end).toBeCloseTo(3, 1);
  });

  test("a trim counts the audio's own time when the audio starts after the video", async () => {
    // 8 s of video; the audio starts at 3 s: 440 Hz for its first 2 s, then 880 Hz.
    const video = join(outputs, "late-tone.mp4");
    const tone = "aevalsrc=sin(2*PI*if(lt(t\\,2)\\,440\\,880)*t):s=44100:d=5";
    await run(
      ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=duration=8:size=160x90:rate=15"]
        .concat(["-itsoffset", "3", "-f", "lavfi", "-i", tone, "-c:v", "libx264", "-preset", "ultrafast"])
        .concat(["-c:a", "aac", video]),
    );
    // Seconds 2.5 to 4 of the audio (5.5 to 7 of the video): the 880 Hz part. ffmpeg's first
    // run seeks in the video's time (the audio's 0 to 1.5: 440 Hz); the plan runs it again.
    const { job, mp3, probed } = await convert(video, "late.mp4", { start: 2.5, end: 4, cover: "none" });
    expect(await toneFrequency(mp3)).toBeCloseTo(880, -1);
    expect(Math.abs(seconds(probed) - 1.5)).toBeLessThan(0.1);
    expect(entries.some((entry) => entry.event === "convert.rerun" && entry.jobId === job._id.toHexString())).toBe(
      true,
    );
  });

  test("a start past the audio fails the job, saying so", async () => {
    const job = await convertFailing(await makeVideo({ seconds: 3 }), "late.mp4", { start: 10 });
    expect(job.error).toBe("the trim starts at 0:10 (10 s), but the audio lasts only 0:03 (3 s)");
    expect(job.errorKind).toBe("trim");
    expect(job.source.audioTracks).toHaveLength(1); // found before the plan was refused
  });

  test("progress counts the trimmed span, not the whole audio", async () => {
    const video = await makeVideo({ seconds: 20, size: "64x36" });
    const contentType = (await fileTypeFromFile(video))!.mime;
    const job = await bench.jobs.create({
      userId: "42",
      email: "owner@example.com",
      source: { kind: "upload", filename: "long.mp4", bytes: 0, contentType },
      options: { start: 5, end: 15 },
    });
    const context = bench.context();
    const workDir = mkdtempSync(join(tmp, "progress-"));
    const fractions: number[] = [];
    try {
      const signal = new AbortController().signal;
      const encoded = await encode(context, job, { mode: "spooled", path: video }, workDir, {
        signal,
        log,
        onProgress: (f) => fractions.push(f),
      });
      expect(encoded.plan.spanSec).toBeCloseTo(10, 1);
      expect(fractions.at(-1)).toBeCloseTo(1, 1); // of the 10 s span; of the 20 s audio it would be 0.5
      expect(Math.max(...fractions)).toBeLessThan(1.05);
    } finally {
      await run(["rm", "-rf", workDir]);
    }
  });
});

describe("track and channels", () => {
  test("track 1 picks the second audio track", async () => {
    const { job, mp3, probed } = await convert(await makeTwoTrackVideo(), "tracks.mkv", { track: 1 });
    expect(await toneFrequency(mp3)).toBeCloseTo(880, -1);
    expect(audioStream(probed).channels).toBe(1);
    expect(job.options).toMatchObject({ track: 1, channels: 1 });
    expect(job.source.audioTracks).toEqual([
      { index: 0, codec: "aac", channels: 2, language: "eng", durationSec: expect.any(Number) },
      { index: 1, codec: "aac", channels: 1, title: "Commentary", durationSec: expect.any(Number) },
    ]);
  });

  test("by default the track marked default, else the first", async () => {
    const first = await convert(await makeTwoTrackVideo({ defaultTrack: 0 }), "first.mkv");
    expect(await toneFrequency(first.mp3)).toBeCloseTo(440, -1);
    expect(first.job.options).toMatchObject({ track: 0, channels: 2 });
    // ffmpeg starts on the first track before the probe answers; the plan runs it again.
    const second = await convert(await makeTwoTrackVideo({ defaultTrack: 1 }), "second.mkv");
    expect(await toneFrequency(second.mp3)).toBeCloseTo(880, -1);
    expect(second.job.options).toMatchObject({ track: 1, channels: 1 });
    expect(
      entries.some((entry) => entry.event === "convert.rerun" && entry.jobId === second.job._id.toHexString()),
    ).toBe(true);
  });

  test("a track that does not exist fails the job, naming the tracks there are", async () => {
    const job = await convertFailing(await makeTwoTrackVideo(), "tracks.mkv", { track: 5 });
    expect(job.error).toBe(
      "there is no audio track 5 (tracks count from 0): this file has 2 audio tracks (0: aac, 2 channels, eng; 1: aac, 1 channel, “Commentary”)",
    );
    expect(job.errorKind).toBe("track_missing");
    expect(job.source.audioTracks).toHaveLength(2);
  });

  test("channels 1 mixes a stereo track down to mono; channels 2 makes a mono one stereo", async () => {
    const mono = await convert(await makeTwoTrackVideo(), "mono.mkv", { channels: 1 });
    expect(audioStream(mono.probed).channels).toBe(1);
    expect(mono.job.options).toMatchObject({ channels: 1 });
    const stereo = await convert(await makeVideo({ seconds: 2 }), "stereo.mp4", { channels: 2 });
    expect(audioStream(stereo.probed).channels).toBe(2);
  });
});

describe("normalize", () => {
  test("brings a quiet source to -16 LUFS (±1 LU) with true peaks at most -1.5 dBTP", async () => {
    const video = await makeSpeechLikeVideo({ seconds: 6, gainDb: -14 });
    const before = await loudness(video);
    expect(before.integratedLufs).toBeLessThan(-25); // far from the target to begin with
    const { job, mp3 } = await convert(video, "quiet.mkv", { normalize: true });
    const after = await loudness(mp3);
    expect(Math.abs(after.integratedLufs - -16)).toBeLessThanOrEqual(1);
    expect(after.truePeakDb).toBeLessThanOrEqual(-1.5);
    expect(job.options).toMatchObject({ normalize: true });
  });

  test("without it the loudness is left as it was", async () => {
    const video = await makeSpeechLikeVideo({ seconds: 4, gainDb: -14 });
    const { mp3 } = await convert(video, "as-is.mkv", { cover: "none" });
    expect(Math.abs((await loudness(mp3)).integratedLufs - (await loudness(video)).integratedLufs)).toBeLessThan(1);
  });
});
