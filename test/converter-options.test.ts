// The conversion options (issue 17) as the converter applies them, measured on the MP3 it
// stores: bit rate, trim, track, channels, loudness, tags, cover, chapters, and the options
// written back on the job as applied with the source's audio tracks. Real ffmpeg, RabbitMQ
// (a vhost of its own) and MongoDB (MONGODB_URL or the stand-in); jobs are made the way the
// gateway leaves them, with an `options` field. Every MP3 is read by ffprobe and by an ID3
// library (music-metadata), as players would.
import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import { createReadStream, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { fileTypeFromFile } from "file-type";
import type { ObjectId } from "mongodb";
import { type IAudioMetadata, parseFile } from "music-metadata";
import { encode } from "../converter/encode.ts";
import { retentionSweeper } from "../converter/sweeper.ts";
import type { BucketName } from "../lib/files.ts";
import type { Job } from "../lib/jobs.ts";
import type { ConversionOptions } from "../lib/options.ts";
import { QUEUES } from "../lib/queue.ts";
import { converterBench } from "./support/converter-bench.ts";
import { drainQueue, settle, waitForJob as waitForFinished } from "./support/jobs.ts";
import {
  type AudioFormat,
  loudness,
  makeAudio,
  makeChapteredVideo,
  makeSpeechLikeVideo,
  makeTwoTrackVideo,
  makeVideo,
  run,
  toneFrequency,
} from "./support/media.ts";

const bench = converterBench("converter-options", { MP3_QUALITY: "2" });
const { tmp, log, entries, startConverter } = bench;
const outputs = mkdtempSync(join(tmpdir(), "m3dio-options-mp3-"));
let converter: Awaited<ReturnType<typeof startConverter>>;

beforeAll(async () => {
  converter = await startConverter();
});
bench.beforeTeardown(() => converter?.stop());
afterEach(async () => {
  await drainQueue(bench.vhost.url, QUEUES.mp3); // the announcements are converter.test.ts's subject
  // Every temp directory is gone, whatever happened (the worker removes it last).
  await bench.expectTmpEmpty();
});

/** A job as the gateway leaves it (file in GridFS, record queued with its sniffed type and `options`), published. */
async function queueJob(path: string, filename: string, options?: ConversionOptions): Promise<ObjectId> {
  const contentType = (await fileTypeFromFile(path))?.mime ?? "video/mp4";
  return bench.queueUpload(createReadStream(path), filename, contentType, options);
}

let saved = 0;
/** A file of a bucket, saved to disk. */
async function saveFile(bucket: BucketName, id: ObjectId, extension: string): Promise<string> {
  return bench.saveFile(bucket, id, join(outputs, `${++saved}.${extension}`));
}

/** Converts `path` with `options`: the job, done, and its MP3 as ffprobe and music-metadata read it. */
async function convert(path: string, filename: string, options?: ConversionOptions) {
  const id = await queueJob(path, filename, options);
  const job = await waitForFinished(bench.jobs, id);
  expect(job.error).toBeUndefined();
  expect(job.status).toBe("done");
  const mp3 = await saveFile("mp3s", job.audioFileId!, "mp3");
  return { job, mp3, probed: await ffprobe(mp3), tags: await parseFile(mp3) };
}

/** Converts `path` with `options`, expecting the job to fail. */
async function convertFailing(path: string, filename: string, options?: ConversionOptions): Promise<Job> {
  const job = await waitForFinished(bench.jobs, await queueJob(path, filename, options));
  expect(job.status).toBe("failed");
  expect(job.attempts).toBe(1);
  expect(job.audioFileId).toBeUndefined();
  return job;
}

interface Probed {
  format: { duration: string; bit_rate: string; tags?: Record<string, string> };
  streams: {
    codec_type: string;
    codec_name: string;
    bit_rate?: string;
    channels?: number;
    width?: number;
    disposition: { attached_pic: number };
    tags?: Record<string, string>;
  }[];
  chapters: { start_time: string; end_time: string; tags?: { title?: string } }[];
}

async function ffprobe(path: string): Promise<Probed> {
  const out = await run([
    "ffprobe",
    "-v",
    "error",
    "-of",
    "json",
    "-show_format",
    "-show_streams",
    "-show_chapters",
    path,
  ]);
  return JSON.parse(out) as Probed;
}

const audioStream = (probed: Probed) => probed.streams.find((stream) => stream.codec_type === "audio")!;
const pictures = (probed: Probed) => probed.streams.filter((stream) => stream.disposition.attached_pic === 1);
const seconds = (probed: Probed) => Number(probed.format.duration);
/** The ID3 version the MP3's tag has, as music-metadata names it (`ID3v2.3`). */
const id3Versions = (tags: IAudioMetadata) => tags.format.tagTypes;

describe("defaults", () => {
  test("a video with chapters and container tags: its title and artist, its chapters, a frame as cover, nothing else", async () => {
    const video = await makeChapteredVideo({
      seconds: 6,
      tags: { title: "Concert Film", artist: "The Band" },
      chapters: [
        { startSec: 0, endSec: 2, title: "Opening" },
        { startSec: 2, endSec: 4, title: "Middle – ünïcødé" },
        { startSec: 4, endSec: 6, title: "Finale" },
      ],
    });
    const { job, probed, tags } = await convert(video, "concert.mp4");
    expect(id3Versions(tags)).toEqual(["ID3v2.3"]);
    expect(probed.format.tags).toEqual({ title: "Concert Film", artist: "The Band" }); // no major_brand, encoder...
    expect(tags.common.title).toBe("Concert Film");
    expect(tags.common.artist).toBe("The Band");
    expect(
      probed.chapters.map((chapter) => [Number(chapter.start_time), Number(chapter.end_time), chapter.tags?.title]),
    ).toEqual([
      [0, 2, "Opening"],
      [2, 4, "Middle – ünïcødé"],
      [4, 6, "Finale"],
    ]);
    expect(tags.format.chapters?.map((chapter) => chapter.title)).toEqual(["Opening", "Middle – ünïcødé", "Finale"]);
    // The cover: a JPEG frame at most 600 px wide, the front cover, the same bytes in `covers`.
    const [picture] = pictures(probed);
    expect(picture?.codec_name).toBe("mjpeg");
    expect(tags.common.picture?.[0]?.format).toBe("image/jpeg");
    expect(tags.common.picture?.[0]?.type).toBe("Cover (front)");
    expect(job.coverFileId).toBeDefined();
    const cover = await saveFile("covers", job.coverFileId!, "jpg");
    expect(Buffer.from(await Bun.file(cover).arrayBuffer())).toEqual(Buffer.from(tags.common.picture![0]!.data));
    expect((await fileTypeFromFile(cover))?.mime).toBe("image/jpeg");
    expect(job.options).toEqual({
      quality: 2,
      track: 0,
      channels: 1,
      normalize: false,
      title: "Concert Film",
      artist: "The Band",
      cover: "frame",
    });
    expect(job.source.audioTracks).toEqual([{ index: 0, codec: "aac", channels: 1, durationSec: expect.any(Number) }]);
    expect(job.source.audioTracks?.[0]?.durationSec).toBeCloseTo(6, 0);
  });

  test("without a title tag the title is the file's name without its extension", async () => {
    const { job, tags, probed } = await convert(await makeVideo({ seconds: 2, size: "1280x720" }), "Summer trip.mov");
    expect(tags.common.title).toBe("Summer trip");
    expect(job.options?.title).toBe("Summer trip");
    expect(pictures(probed)[0]?.width).toBe(600); // a 1280×720 frame, scaled down
  });
});

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

describe("tags and cover", () => {
  test("title, artist and album as given, in any script", async () => {
    const options = { title: "Ünïcødé – 東京 Live", artist: "Ærøskøbing Ensemble", album: "Plain album" };
    const { job, tags, probed } = await convert(await makeVideo({ seconds: 2 }), "tagged.mp4", options);
    expect(id3Versions(tags)).toEqual(["ID3v2.3"]);
    expect([tags.common.title, tags.common.artist, tags.common.album]).toEqual([
      options.title,
      options.artist,
      options.album,
    ]);
    expect(probed.format.tags).toEqual(options);
    expect(job.options).toMatchObject(options);
  });

  test("cover none: no picture in the MP3, none stored", async () => {
    const { job, tags, probed } = await convert(await makeVideo({ seconds: 2 }), "bare.mp4", { cover: "none" });
    expect(pictures(probed)).toEqual([]);
    expect(tags.common.picture).toBeUndefined();
    expect(job.coverFileId).toBeUndefined();
    expect(job.options).toMatchObject({ cover: "none" });
  });

  test("an audio file keeps its own cover and tags", async () => {
    const song = await makeAudio({
      format: "mp3",
      seconds: 2,
      cover: true,
      tags: { title: "Own Title", album: "Own" },
    });
    const { job, tags, probed } = await convert(song, "song.mp3");
    expect(tags.common.title).toBe("Own Title");
    expect(tags.common.album).toBe("Own");
    expect(tags.common.picture?.[0]?.format).toBe("image/jpeg");
    expect(pictures(probed)).toHaveLength(1);
    expect(job.coverFileId).toBeDefined();
    expect(job.options).toMatchObject({ title: "Own Title", album: "Own", cover: "frame" });
  });
});

describe("audio-only sources", () => {
  const formats: AudioFormat[] = ["m4a", "mp3", "wav", "flac", "ogg", "opus"];
  for (const format of formats) {
    test(`${format} becomes an MP3 as long as the source, titled by its name, without a cover`, async () => {
      const { job, probed, tags } = await convert(await makeAudio({ format, seconds: 2 }), `tone.${format}`);
      expect(Math.abs(seconds(probed) - 2)).toBeLessThan(0.2);
      expect(audioStream(probed).codec_name).toBe("mp3");
      expect(tags.common.title).toBe("tone");
      expect(pictures(probed)).toEqual([]);
      expect(job.options).toMatchObject({ title: "tone", cover: "none", track: 0 });
    });
  }
});

describe("limits and files", () => {
  test("MAX_AUDIO_SECONDS counts the trimmed span", async () => {
    const limited = await startConverter({ MAX_AUDIO_SECONDS: "2" });
    await converter.stop(); // the limited one takes the jobs
    try {
      const video = await makeVideo({ seconds: 4 });
      const whole = await convertFailing(video, "whole.mp4");
      expect(whole.error).toBe("the audio lasts 0:04, longer than the 0:02 (2 s) this service converts");
      expect(whole.errorKind).toBe("too_long");
      const { probed } = await convert(video, "part.mp4", { start: 1, end: 2.5 });
      expect(Math.abs(seconds(probed) - 1.5)).toBeLessThan(0.1);
    } finally {
      await limited.stop();
      converter = await startConverter();
    }
  });

  test("the retention sweeper removes the cover with the job", async () => {
    const { job } = await convert(await makeVideo({ seconds: 1 }), "expiring.mp4");
    expect(await bench.files.stat("covers", job.coverFileId!)).not.toBeNull();
    await bench.jobs.collection.updateOne({ _id: job._id }, { $set: { expiresAt: new Date(Date.now() - 1000) } });
    await retentionSweeper({ jobs: bench.jobs, files: bench.files, log }).sweepOnce();
    expect(await bench.jobs.get(job._id)).toBeNull();
    expect(await bench.files.stat("covers", job.coverFileId!)).toBeNull();
    expect(await bench.files.stat("mp3s", job.audioFileId!)).toBeNull();
  });

  test("a cover an earlier attempt left is removed when the job's message comes again", async () => {
    const { job } = await convert(await makeVideo({ seconds: 1 }), "again.mp4");
    const jobId = job._id.toHexString();
    const stray = await bench.files.upload("covers", Readable.from([Buffer.from("left behind")]), {
      owner: "42",
      filename: "again.jpg",
      contentType: "image/jpeg",
      jobId,
    });
    await bench.queue.publish(QUEUES.video, { jobId }, { messageId: jobId });
    expect(
      await settle(
        () => bench.files.stat("covers", stray.id),
        (file) => file === null,
      ),
    ).toBeNull();
    expect(await bench.files.stat("covers", job.coverFileId!)).not.toBeNull();
  });
});
