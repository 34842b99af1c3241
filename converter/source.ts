// How ffmpeg and ffprobe get the job's video out of GridFS: as the bytes arrive, through a
// pipe, wherever the container allows it, so reading and converting overlap instead of
// adding up. Chosen from the container and its first bytes:
// - `piped`: Matroska and WebM (their header gives the length), and MP4/MOV whose index
//   (`moov`) comes before the samples (`mdat`): the file as stored, read from the start;
// - `relocated`: MP4/MOV with the index at the end, as cameras and ffmpeg write it: the
//   index is fetched first and sent ahead of the samples with their offsets moved by its
//   size (what qt-faststart does to a file, converter/faststart.ts), then the rest as stored;
// - `audio`: MP4/MOV whose sound lies in runs of its own (phones' ~1 s runs, fragmented
//   files): the audio's ffmpeg reads an MP4 of the sound alone, made of only the GridFS
//   chunks that hold it (converter/audio-only.ts); ffprobe and the cover read as above;
// - `piped` too: MPEG-TS, whose length no header gives: its first and last audio times
//   do (converter/ts-length.ts);
// - `spooled`: everything else (AVI, FLV, … whose length a pipe does not give,
//   and MP4s the relocation does not handle): copied to the job's temp dir first, as before.
// Each process (ffmpeg, ffprobe, the cover's ffmpeg) reads its own stream from the store:
// ffprobe and the cover stop early, and a rerun starts from the start.
import { Readable } from "node:stream";
import type { ObjectId } from "mongodb";
import type { FileStore } from "../lib/files.ts";
import { gathered, type Mp4Reading, mp4Reading } from "./audio-only.ts";
import { chunkReader, type ReadCount } from "./chunk-reader.ts";
import { type MovLayout, movLayout, relocatedIndex } from "./faststart.ts";
import { demuxerFor, inputOptions } from "./inputs.ts";
import { keyframeFile } from "./keyframe.ts";
import { matroskaCover } from "./matroska-cover.ts";
import { matroskaSound } from "./matroska-sound.ts";
import { childBoxes, type TrackFragment } from "./mp4-index.ts";
import { tsAudioLength } from "./ts-length.ts";

export type SourceMode = "piped" | "relocated" | "audio" | "spooled";

/** A streamed source: each call opens a fresh stream of the bytes as ffmpeg is to read them. */
export interface StreamedSource {
  mode: "piped" | "relocated" | "audio";
  /** The whole file as a pipe can give it (`piped` or `relocated`): what ffprobe and the cover read. */
  open(signal: AbortSignal): Readable;
  /** What the audio's ffmpeg reads: the same, or in `audio` mode the sound alone (converter/audio-only.ts). */
  openAudio(signal: AbortSignal): Readable;
  /** What ffprobe reads: an MP4's type and index alone (they describe every track), else the same. */
  openProbe(signal: AbortSignal): Readable;
  /**
   * The cover's frame without reading up to it, and where it is in what it gives: for an
   * MP4/MOV a one-frame MP4 of the keyframe at or before `atSec` (converter/keyframe.ts),
   * for Matroska the header and the cluster holding `atSec` (converter/matroska-cover.ts);
   * null where the file does not say (the cover then reads `open()` up to its time).
   */
  openCover?(cover: CoverAt, signal: AbortSignal): Promise<{ stream: Readable; cover: CoverAt } | null>;
  /** The bytes read out of the store so far, by every stream opened. */
  readonly read: ReadCount;
  /** In `audio` mode, the share of the file's chunks the sound needs. */
  share?: number;
  /** What a fragmented MP4's index says of its length, which ffprobe on a pipe does not see. */
  durations?: Mp4Reading["durations"];
  /** An MPEG-TS file's length, from its first and last audio times (converter/ts-length.ts): for every track. */
  lengthSec?: number;
}

/** A video stream's frame at a time: the cover's. */
type CoverAt = { stream: number; atSec: number };

/** What ffmpeg reads: the spooled file, or a stream of the stored bytes. */
export type Input = { mode: "spooled"; path: string } | StreamedSource;

/** The input as ffmpeg and ffprobe name it, and its options (converter/inputs.ts). */
export const inputArgs = (input: Input, contentType: string) =>
  input.mode === "spooled"
    ? { path: input.path, options: inputOptions(contentType, "file") }
    : { path: "pipe:0", options: inputOptions(contentType, "pipe") };

/** The bytes read to choose (GridFS's first chunk holds them). */
const HEAD_BYTES = 64 * 1024;
/** An MPEG-TS file's first and last this many bytes are read for its audio times (a second of a broadcast). */
const TS_END_BYTES = 1024 * 1024;
/** An index larger than this is not held in memory: the file is spooled. */
const MAX_INDEX_BYTES = 32 * 1024 * 1024;

/** How the video `id` of `contentType` can be read without a copy; null: spool it. */
export async function streamedSource(
  files: FileStore,
  id: ObjectId,
  contentType: string,
  signal: AbortSignal,
): Promise<StreamedSource | null> {
  const read: ReadCount = { bytes: 0 };
  const stored = (range: { start?: number; end?: number }, stop: AbortSignal) =>
    counted(files.readChunks("videos", id, { ...range, signal: stop }), read);
  const whole = (stop: AbortSignal) => Readable.from(stored({}, stop), { objectMode: false });
  const demuxer = demuxerFor(contentType);
  if (demuxer !== "mov" && demuxer !== "mpegts" && demuxer !== "matroska") return null;
  const file = await files.stat("videos", id);
  if (!file) return null; // the spool names the loss
  const chunks = (stop = signal) => chunkReader(files, id, file, stop, read);
  if (demuxer === "matroska") {
    // ffmpeg gets the sound alone (converter/matroska-sound.ts); ffprobe the file; the cover one cluster.
    const sound = (stop: AbortSignal) => gathered(matroskaSound(stored({}, stop)), 256 * 1024);
    const openAudio = (stop: AbortSignal) => Readable.from(sound(stop), { objectMode: false });
    const openCover = async (cover: CoverAt, stop: AbortSignal) => {
      const found = await matroskaCover(chunks(stop), file.length, cover.atSec);
      if (!found) return null;
      const bytes = async function* () {
        yield found.head;
        yield* stored(found.cluster, stop);
      };
      return { stream: Readable.from(bytes()), cover: { stream: cover.stream, atSec: found.atSec } };
    };
    return { mode: "audio", open: whole, openAudio, openProbe: whole, openCover, read };
  }
  const readRange = (start: number, end: number) => bytesOf(stored({ start, end }, signal));
  if (demuxer === "mpegts") {
    const ends = [readRange(0, TS_END_BYTES), readRange(Math.max(0, file.length - TS_END_BYTES), file.length)];
    const lengthSec = tsAudioLength(...((await Promise.all(ends)) as [Buffer, Buffer]));
    return lengthSec ? { mode: "piped", open: whole, openAudio: whole, openProbe: whole, read, lengthSec } : null;
  }
  const layout = await movLayout(file.length, readRange, HEAD_BYTES);
  if (!layout) return null;
  const indexFirst = layout.moov.start < layout.mdat.start;
  if (layout.moov.size > MAX_INDEX_BYTES)
    return indexFirst ? { mode: "piped", open: whole, openAudio: whole, openProbe: whole, read } : null;
  const moov = await readRange(layout.moov.start, layout.moov.start + layout.moov.size);
  const index = indexFirst ? null : relocatedIndex(moov, layout);
  if (!indexFirst && !index) return null;
  const open = index ? (stop: AbortSignal) => Readable.from(relocated(stored, layout, index, stop)) : whole;
  const mode = index ? "relocated" : "piped";
  const { sound, durations, fragments } = await mp4Reading(chunks, layout, moov, file);
  const told = durations ? { durations } : {};
  // A fragmented file whose fragments could not be read gives its cover the old way.
  const cover =
    layout.firstFragment === undefined || fragments ? { openCover: keyframes(layout, moov, stored, fragments) } : {};
  // The index describes every track: ffprobe needs nothing past it (read on, it would take ~5 MB of samples).
  const openProbe = () => Readable.from([layout.ftyp, moov]);
  if (!sound) return { mode, open, openAudio: open, openProbe, read, ...told, ...cover };
  return { mode: "audio", open, openAudio: sound.open, openProbe, read, share: sound.share, ...told, ...cover };
}

type StoredRange = (range: { start?: number; end?: number }, signal: AbortSignal) => AsyncGenerator<Uint8Array>;

/** The boxes before the samples, the moved index, then the samples up to the old index. */
async function* relocated(stored: StoredRange, layout: MovLayout, index: Buffer, signal: AbortSignal) {
  yield* stored({ start: 0, end: layout.mdat.start }, signal);
  yield index;
  yield* stored({ start: layout.mdat.start, end: layout.moov.start }, signal);
}

/** The one-frame MP4 of a cover's keyframe, its sample read out of the store (ffprobe numbers streams as the index orders its tracks). */
function keyframes(layout: MovLayout, moov: Buffer, stored: StoredRange, fragments?: TrackFragment[]) {
  return async ({ stream, atSec }: CoverAt, signal: AbortSignal) => {
    const [outer] = childBoxes(moov, 0, moov.length);
    const trak = childBoxes(moov, outer!.body, outer!.end).filter((box) => box.type === "trak")[stream];
    const frame = trak && keyframeFile(moov, trak, atSec, layout.ftyp, fragments);
    if (!frame || frame.sample.end > layout.length) return null; // outside the file: the stream's cover will say
    const bytes = async function* () {
      yield frame.head;
      yield* stored(frame.sample, signal);
    };
    return { stream: Readable.from(bytes()), cover: { stream: 0, atSec: 0 } }; // the one frame
  };
}

async function* counted(chunks: AsyncIterable<Uint8Array>, read: ReadCount) {
  for await (const chunk of chunks) {
    read.bytes += chunk.byteLength;
    yield chunk;
  }
}

async function bytesOf(chunks: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of chunks) parts.push(chunk);
  return Buffer.concat(parts);
}

/**
 * Writes `source` into a child's stdin until it ends or the child stops reading (ffprobe
 * and the cover's ffmpeg stop early; ffmpeg with a trim too). Answers the store's error,
 * if reading failed: the caller's to throw rather than the child's failure, which is not
 * the input's fault. A child gone answers nothing: its exit says how it went.
 */
export async function feed(source: Readable, stdin: Bun.FileSink, exited: Promise<unknown>): Promise<Error | null> {
  let gone = false;
  void exited.finally(() => {
    gone = true;
    source.destroy();
  });
  const chunks = source[Symbol.asyncIterator]();
  try {
    for (;;) {
      let next: IteratorResult<Uint8Array>;
      try {
        next = await chunks.next();
      } catch (error) {
        return gone ? null : (error as Error);
      }
      if (next.done || gone) return null;
      try {
        // Both awaited: either may answer a promise that rejects (EPIPE) once the child closed its stdin.
        await stdin.write(next.value);
        await stdin.flush();
      } catch {
        return null; // the child closed its stdin
      }
    }
  } finally {
    source.destroy();
    await Promise.resolve(stdin.end()).catch(() => {});
  }
}
