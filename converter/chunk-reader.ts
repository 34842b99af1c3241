// Random access to a stored video by GridFS chunk: a few spans here and there (an MP4's
// sound between its pictures, converter/audio-only.ts) without reading what lies between.
// Chunks are fetched as runs through the store's reader (lib/files.ts readChunks, which
// checks every chunk), the last few are kept (a fragment's header and the sound after it
// often share one), and the next span's run is asked for while this one is used.
import type { ObjectId } from "mongodb";
import type { FileStore } from "../lib/files.ts";
import type { Span } from "./mp4-index.ts";

/** Chunks kept after use: a fragment's header, the end of its sound and the next header. */
const KEPT_CHUNKS = 4;

export interface ChunkReader {
  readonly chunkSize: number;
  /** The bytes [start, end) of the file. */
  read(start: number, end: number): Promise<Buffer>;
  /** The bytes of each span in turn, as they arrive. */
  spans(spans: Span[]): AsyncGenerator<Uint8Array>;
  /** A copy of the bytes [start, end) if every chunk they lie in is still kept, without fetching. */
  kept(start: number, end: number): Buffer | undefined;
}

/** Bytes read out of the store, counted by every reader of one job. */
export interface ReadCount {
  bytes: number;
}

export function chunkReader(
  files: FileStore,
  id: ObjectId,
  { chunkSize, length }: { chunkSize: number; length: number },
  signal: AbortSignal,
  count: ReadCount,
): ChunkReader {
  const kept = new Map<number, Uint8Array>();

  /** Chunks [first, last] (inclusive), the missing ones fetched as one run. */
  async function chunks(first: number, last: number): Promise<Uint8Array[]> {
    let missing = first;
    while (missing <= last && kept.has(missing)) missing++;
    let end = last;
    while (end >= missing && kept.has(end)) end--;
    const got = new Map<number, Uint8Array>();
    if (missing <= end) {
      let n = missing;
      const range = { start: missing * chunkSize, end: Math.min(length, (end + 1) * chunkSize), signal };
      for await (const chunk of files.readChunks("videos", id, range)) {
        got.set(n++, chunk);
        count.bytes += chunk.byteLength;
      }
    }
    const all: Uint8Array[] = [];
    for (let n = first; n <= last; n++) {
      const chunk = got.get(n) ?? kept.get(n);
      if (!chunk) throw new Error(`videos file ${id}: chunk ${n} was not read`);
      all.push(chunk);
    }
    for (let n = Math.max(first, last - KEPT_CHUNKS + 1); n <= last; n++) kept.set(n, all[n - first]!);
    for (const n of kept.keys()) if (kept.size > KEPT_CHUNKS) kept.delete(n); // the oldest first
    return all;
  }

  /** The parts of chunks [first, last] that lie in [start, end). */
  async function partsOf({ start, end }: Span): Promise<Uint8Array[]> {
    const first = Math.floor(start / chunkSize);
    const last = Math.floor((end - 1) / chunkSize);
    return (await chunks(first, last)).map((chunk, index) => {
      const at = (first + index) * chunkSize;
      return chunk.subarray(Math.max(0, start - at), Math.min(chunk.byteLength, end - at));
    });
  }

  return {
    chunkSize,
    async read(start, end) {
      if (start < 0 || end > length || start > end) throw new RangeError(`bytes ${start}-${end} of ${length}`);
      return start === end ? Buffer.alloc(0) : Buffer.concat(await partsOf({ start, end }));
    },
    kept(start, end) {
      const parts: Uint8Array[] = [];
      for (let n = Math.floor(start / chunkSize); n * chunkSize < end; n++) {
        const chunk = kept.get(n);
        if (!chunk) return undefined;
        const at = n * chunkSize;
        parts.push(chunk.subarray(Math.max(0, start - at), Math.min(chunk.byteLength, end - at)));
      }
      return Buffer.concat(parts); // a copy: the chunks it came from can go
    },
    async *spans(spans) {
      const merged = mergeAdjacent(spans.filter((span) => span.end > span.start));
      let next = merged.length ? partsOf(merged[0]!) : undefined;
      for (let index = 0; next; index++) {
        const parts = await next;
        // The next span's chunks are asked for while these are used; a failure waits its turn.
        next = index + 1 < merged.length ? partsOf(merged[index + 1]!) : undefined;
        next?.catch(() => {});
        yield* parts;
      }
    },
  };
}

/** Spans that follow each other without a gap, as one. */
function mergeAdjacent(spans: Span[]): Span[] {
  const merged: Span[] = [];
  for (const span of spans) {
    const last = merged.at(-1);
    if (last && last.end === span.start) last.end = span.end;
    else merged.push({ ...span });
  }
  return merged;
}
