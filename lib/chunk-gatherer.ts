// The bytes of a whole file on their way into GridFS (lib/files.ts `writeFile`): pieces of
// any size gathered into GridFS chunks, whose buffers are filled again once written.
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
 * filled again (fewer buffers for the collector to free).
 */
export function chunkGatherer() {
  const spare: Buffer[] = [];
  let current: Buffer = Buffer.allocUnsafe(CHUNK_BYTES);
  let filled = 0;
  let full: Buffer[] = [];
  let nextN = 0; // the number of full[0]
  let length = 0;
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
