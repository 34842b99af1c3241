// How ffmpeg and ffprobe get the job's video out of GridFS: as the bytes arrive, through a
// pipe, wherever the container allows it, so reading and converting overlap instead of
// adding up. Chosen from the container and its first bytes:
// - `piped`: Matroska and WebM (their header gives the length), and MP4/MOV whose index
//   (`moov`) comes before the samples (`mdat`): the file as stored, read from the start;
// - `relocated`: MP4/MOV with the index at the end, as cameras and ffmpeg write it: the
//   index is fetched first and sent ahead of the samples with their offsets moved by its
//   size (what qt-faststart does to a file, converter/faststart.ts), then the rest as stored;
// - `spooled`: everything else (MPEG-TS, AVI, FLV, … whose length a pipe does not give,
//   and MP4s the relocation does not handle): copied to the job's temp dir first, as before.
// Each process (ffmpeg, ffprobe, the cover's ffmpeg) reads its own stream from the store:
// ffprobe and the cover stop early, and a rerun starts from the start.
import { Readable } from "node:stream";
import type { ObjectId } from "mongodb";
import type { FileStore } from "../lib/files.ts";
import { type MovLayout, movLayout, relocatedIndex } from "./faststart.ts";
import { demuxerFor, inputOptions } from "./inputs.ts";

export type SourceMode = "piped" | "relocated" | "spooled";

/** A streamed source: each call opens a fresh stream of the bytes as ffmpeg is to read them. */
export interface StreamedSource {
  mode: "piped" | "relocated";
  open(signal: AbortSignal): Readable;
}

/** What ffmpeg reads: the spooled file, or a stream of the stored bytes. */
export type Input = { mode: "spooled"; path: string } | StreamedSource;

/** The input as ffmpeg and ffprobe name it, and its options (converter/inputs.ts). */
export const inputArgs = (input: Input, contentType: string) =>
  input.mode === "spooled"
    ? { path: input.path, options: inputOptions(contentType, "file") }
    : { path: "pipe:0", options: inputOptions(contentType, "pipe") };

/** The bytes read to choose (GridFS's first chunk holds them). */
const HEAD_BYTES = 64 * 1024;
/** An index larger than this is not held in memory: the file is spooled. */
const MAX_INDEX_BYTES = 32 * 1024 * 1024;

/** How the video `id` of `contentType` can be read without a copy; null: spool it. */
export async function streamedSource(
  files: FileStore,
  id: ObjectId,
  contentType: string,
  signal: AbortSignal,
): Promise<StreamedSource | null> {
  const demuxer = demuxerFor(contentType);
  if (demuxer === "matroska") return { mode: "piped", open: (stop) => reader(files, id, {}, stop) };
  if (demuxer !== "mov") return null;
  const file = await files.stat("videos", id);
  if (!file) return null; // the spool names the loss
  const readRange = (start: number, end: number) => bytesOf(files.readChunks("videos", id, { start, end, signal }));
  const layout = await movLayout(file.length, readRange, HEAD_BYTES);
  if (!layout) return null;
  if (layout.moov.start < layout.mdat.start) return { mode: "piped", open: (stop) => reader(files, id, {}, stop) };
  if (layout.moov.size > MAX_INDEX_BYTES) return null;
  const moov = await readRange(layout.moov.start, layout.moov.start + layout.moov.size);
  const index = relocatedIndex(moov, layout);
  if (!index) return null;
  return { mode: "relocated", open: (stop) => Readable.from(relocated(files, id, layout, index, stop)) };
}

/** The boxes before the samples, the moved index, then the samples up to the old index. */
async function* relocated(files: FileStore, id: ObjectId, layout: MovLayout, index: Buffer, signal: AbortSignal) {
  yield* files.readChunks("videos", id, { start: 0, end: layout.mdat.start, signal });
  yield index;
  yield* files.readChunks("videos", id, { start: layout.mdat.start, end: layout.moov.start, signal });
}

const reader = (files: FileStore, id: ObjectId, range: { start?: number; end?: number }, signal: AbortSignal) =>
  files.openReader("videos", id, { ...range, signal });

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
