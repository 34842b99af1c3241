// The conversion options (issue 17) that label the MP3, as the converter applies them: the
// defaults (title, artist, chapters, a frame as cover), tags and cover as given, audio-only
// sources, and the limits and files around them. Real ffmpeg, RabbitMQ (a vhost of its own)
// and MongoDB (MONGODB_URL or the stand-in); the bench (test/support/options-bench.ts) queues
// jobs the way the gateway leaves them and reads every MP3 by ffprobe and music-metadata.
// The options that shape the audio are converter-options-audio.test.ts's.
import { beforeAll, describe, expect, test } from "bun:test";
import { Readable } from "node:stream";
import { fileTypeFromFile } from "file-type";
import { retentionSweeper } from "../converter/sweeper.ts";
import { QUEUES } from "../lib/queue.ts";
import { settle } from "./support/jobs.ts";
import { type AudioFormat, makeAudio, makeChapteredVideo, makeVideo } from "./support/media.ts";
import { audioStream, id3Versions, optionsBench, pictures, seconds } from "./support/options-bench.ts";

const { bench, convert, convertFailing, saveFile } = optionsBench("options-tags");
const { log, startConverter } = bench;
let converter: Awaited<ReturnType<typeof startConverter>>;

beforeAll(async () => {
  converter = await startConverter();
});
bench.beforeTeardown(() => converter?.stop());

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
