// The bytes of a file on their way into GridFS (lib/files.ts `writeFile`, and a tus PATCH's:
// gateway/uploads/receive.ts): pieces of any size gathered into GridFS chunks, whose buffers
// are filled again once written.
import { collectEvery } from "./memory.ts";

/** GridFS's default chunk size (255 KiB), of every file we write. */
export const CHUNK_BYTES = 255 * 1024;

/** Chunks written at a time while a whole file is stored (1 MiB), as the tus path writes them. */
export const WRITE_BATCH_CHUNKS = 4;
/**
 * Storing a chunk leaves its BSON and wire copies for the collector (the chunk buffers are
 * filled again, a request body's pieces freed as they are copied): a young collection per MiB
 * stored frees most of them, a full one per 16 MiB what outlived a young one. On a 1 GiB upload
 * a full one costs ~20 ms: per 8 MiB ~1.5 s per GiB more than per 16, per 32 ~0.7 s less for
 * ~4 MB more peak; none at all let the gateway pass 180 MB (figures in the commits).
 */
const stored = collectEvery(16 * 1024 * 1024, 1024 * 1024);

/**
 * Pieces of any size gathered into CHUNK_BYTES buffers; the buffers of written chunks are
 * filled again (fewer buffers for the collector to free). A file written over several
 * requests (tus: gateway/uploads/receive.ts) goes on `from` chunk `n`, whose first bytes
 * (`tail`) an earlier request kept.
 */
export function chunkGatherer(from: { n: number; tail: Uint8Array } = { n: 0, tail: new Uint8Array(0) }) {
  const spare: Buffer[] = [];
  let current: Buffer = Buffer.allocUnsafe(CHUNK_BYTES);
  current.set(from.tail);
  let filled = from.tail.length;
  let full: Buffer[] = [];
  let nextN = from.n; // the number of full[0]
  let length = 0; // the bytes added (the tail aside)
  return {
    get length() {
      return length;
    },
    get fullCount() {
      return full.length;
    },
    add(piece: Uint8Array) {
      for (let at = 0; at < piece.length; ) {
        const take = Math.min(CHUNK_BYTES - filled, piece.length - at);
        current.set(take === piece.length ? piece : piece.subarray(at, at + take), filled);
        filled += take;
        at += take;
        if (filled === CHUNK_BYTES) {
          full.push(current);
          current = spare.pop() ?? Buffer.allocUnsafe(CHUNK_BYTES);
          filled = 0;
        }
      }
      length += piece.length;
    },
    /** The first chunk's bytes so far (only while no chunk has been taken): what the sniff reads. */
    head: (): Uint8Array => (full.length ? full[0]! : current.subarray(0, filled)),
    /** The bytes past the last full chunk. */
    unfinished: (): Uint8Array => current.subarray(0, filled),
    /** The source is done: its last, shorter chunk is full too (no chunk at all for an empty file). */
    end() {
      if (filled) full.push(current.subarray(0, filled));
      filled = 0;
    },
    /** The full chunks to write next, and the number of the first. */
    take(): { n: number; full: Buffer[] } {
      const batch = { n: nextN, full };
      nextN += full.length;
      full = [];
      return batch;
    },
    /** `chunks` are stored, and the driver done with their buffers. */
    written(chunks: Buffer[]) {
      stored(chunks.length * CHUNK_BYTES);
      for (const chunk of chunks)
        if (chunk.length === CHUNK_BYTES && spare.length < 2 * WRITE_BATCH_CHUNKS) spare.push(chunk);
    },
  };
}
