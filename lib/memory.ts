// Bun frees the buffers of a large transfer (request body pieces, GridFS chunks, their
// BSON copies) only when it collects, and its collector paces itself by the JS heap,
// which those buffers barely touch: a 1 GiB upload or spool left 150 to 450 MB of dead
// buffers behind. Collecting after every few MiB moved keeps a process near its
// resting size (figures in BENCHMARKS.md).
import { edenGC } from "bun:jsc";
import { BSON } from "mongodb";

/**
 * A counter of bytes moved that collects garbage each time `everyBytes` have passed.
 * Make one per kind of transfer at module level, so collections follow the bytes the
 * process moves, not the number of transfers running.
 *
 * A full collection costs the same whatever it frees (7 to 30 ms in the gateway, most of
 * an upload's CPU at one per 4 MiB). With `youngEvery`, a young (eden) collection runs
 * each time that many bytes have passed between the full ones: it frees most of the
 * buffers made since the last collection in a fraction of a millisecond, though alone it
 * leaves some behind, so full collections can be several times rarer for the same peak.
 */
export function collectEvery(everyBytes: number, youngEvery = Number.POSITIVE_INFINITY): (bytes: number) => void {
  let since = 0;
  let sinceYoung = 0;
  return (bytes) => {
    since += bytes;
    sinceYoung += bytes;
    if (since >= everyBytes) {
      since = 0;
      sinceYoung = 0;
      Bun.gc(true); // synchronous: a Bun.gc(false) hint left the peak where it was
    } else if (sinceYoung >= youngEvery) {
      sinceYoung = 0;
      edenGC();
    }
  };
}

/**
 * Gives bson's serializer a new scratch buffer. The one it makes at import (17 MiB, by
 * `Buffer.alloc`) is all resident whenever Bun's allocator hands it memory used before,
 * which it must then zero: a converter started at 80 MB or at 99 MB by chance (4 starts
 * of 8). A larger one made once the process is up cannot reuse a freed block, so it is
 * fresh memory, resident only where a serialization writes (at most the largest document
 * sent, a 255 KiB chunk): 8 starts of 8 at 79-80 MB. The old one goes at the collection.
 */
export function renewBsonScratch(): void {
  if (renewed) return; // once per process: every service that talks to MongoDB calls it (lib/mongo.ts)
  renewed = true;
  BSON.setInternalBufferSize(64 * 1024 * 1024);
  Bun.gc(true);
}
let renewed = false;
