// The bench of the conversion-option tests (converter-options-*.test.ts): the converter
// bench with MP3_QUALITY 2, jobs queued the way the gateway leaves them with an `options`
// field, and every MP3 read back by ffprobe and by an ID3 library (music-metadata), as
// players would. After each test the `mp3` queue is drained (the announcements are
// converter.test.ts's subject) and the temp dir must be empty.
import { afterEach, expect } from "bun:test";
import { createReadStream, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileTypeFromFile } from "file-type";
import type { ObjectId } from "mongodb";
import { type IAudioMetadata, parseFile } from "music-metadata";
import type { BucketName } from "../../lib/files.ts";
import type { Job } from "../../lib/jobs.ts";
import type { ConversionOptions } from "../../lib/options.ts";
import { QUEUES } from "../../lib/queue.ts";
import { converterBench } from "./converter-bench.ts";
import { drainQueue, waitForJob as waitForFinished } from "./jobs.ts";
import { run } from "./media.ts";

/** The bench of an options test file named `name`, and how its tests convert a file. */
export function optionsBench(name: string) {
  const bench = converterBench(name, { MP3_QUALITY: "2" });
  const outputs = mkdtempSync(join(tmpdir(), `m3dio-${name}-mp3-`));
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

  return { bench, outputs, queueJob, saveFile, convert, convertFailing };
}

export interface Probed {
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

export async function ffprobe(path: string): Promise<Probed> {
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

export const audioStream = (probed: Probed) => probed.streams.find((stream) => stream.codec_type === "audio")!;
export const pictures = (probed: Probed) => probed.streams.filter((stream) => stream.disposition.attached_pic === 1);
export const seconds = (probed: Probed) => Number(probed.format.duration);
/** The ID3 version the MP3's tag has, as music-metadata names it (`ID3v2.3`). */
export const id3Versions = (tags: IAudioMetadata) => tags.format.tagTypes;
