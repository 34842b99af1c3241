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
      const runs = chunkRuns(spans, chunkSize);
      // A short run is fetched whole while the one before it is used (a phone's second of
      // sound: the round trips overlap); a long one streams, readChunks reading ahead itself.
      const fetchShort = (run: ChunkRun) => {
        const fetching = partsOfRun(run);
        fetching.catch(() => {}); // awaited in turn
        return fetching;
      };
      let pending = runs[0] && isShort(runs[0]) ? fetchShort(runs[0]) : undefined;
      for (const [index, run] of runs.entries()) {
        const following = runs[index + 1];
        if (isShort(run)) {
          const parts = await pending!;
          pending = following && isShort(following) ? fetchShort(following) : undefined;
          yield* parts;
        } else {
          yield* streamRun(run);
          pending = following && isShort(following) ? fetchShort(following) : undefined;
        }
      }
    },
  };

  /** The spans' bytes out of the run's chunks, fetched together. */
  async function partsOfRun(run: ChunkRun): Promise<Uint8Array[]> {
    const fetched = await chunks(run.first, run.last);
    return run.spans.flatMap((span) => slices(span, (n) => fetched[n - run.first]!));
  }

  /** The spans' bytes as the run's chunks arrive, one chunk held at a time. */
  async function* streamRun(run: ChunkRun) {
    const range = { start: run.first * chunkSize, end: Math.min(length, (run.last + 1) * chunkSize), signal };
    let n = run.first;
    let next = 0; // the first span not wholly yielded
    for await (const chunk of files.readChunks("videos", id, range)) {
      count.bytes += chunk.byteLength;
      kept.set(n, chunk);
      for (const old of kept.keys()) if (kept.size > KEPT_CHUNKS) kept.delete(old);
      const chunkEnd = n * chunkSize + chunk.byteLength;
      for (; next < run.spans.length && run.spans[next]!.start < chunkEnd; next++) {
        const span = run.spans[next]!;
        yield* slices({ start: Math.max(span.start, n * chunkSize), end: Math.min(span.end, chunkEnd) }, () => chunk);
        if (span.end > chunkEnd) break; // it goes on in the next chunk
      }
      n++;
    }
  }

  /** The parts of `span` in the chunks it lies in, each chunk given by `chunkAt`. */
  function slices({ start, end }: Span, chunkAt: (n: number) => Uint8Array): Uint8Array[] {
    const parts: Uint8Array[] = [];
    for (let n = Math.floor(start / chunkSize); n * chunkSize < end; n++) {
      const at = n * chunkSize;
      parts.push(chunkAt(n).subarray(Math.max(0, start - at), Math.min(chunkAt(n).byteLength, end - at)));
    }
    return parts;
  }
}

/** Spans whose chunks follow each other (or overlap), with the chunks they lie in. */
interface ChunkRun {
  first: number;
  last: number;
  spans: Span[];
}

/** Above this many chunks a run streams rather than being fetched whole. */
const SHORT_RUN_CHUNKS = 8;
const isShort = (run: ChunkRun) => run.last - run.first < SHORT_RUN_CHUNKS;

/**
 * The spans in order as runs of chunks: a span whose first chunk is the run's last or the
 * next joins it, so no chunk is read that holds none of them, and a chunk two spans share
 * is read once. A span that starts before the last one ended starts a run of its own.
 */
function chunkRuns(spans: Span[], chunkSize: number): ChunkRun[] {
  const runs: ChunkRun[] = [];
  for (const span of spans) {
    if (span.end <= span.start) continue;
    const first = Math.floor(span.start / chunkSize);
    const last = Math.floor((span.end - 1) / chunkSize);
    const run = runs.at(-1);
    const previous = run?.spans.at(-1);
    if (run && previous && span.start >= previous.end && first <= run.last + 1) {
      run.last = Math.max(run.last, last);
      run.spans.push(span);
    } else runs.push({ first, last, spans: [span] });
  }
  return runs;
}
