// Bun frees the buffers of a large transfer (request body pieces, GridFS chunks, their
// BSON copies) only when it collects, and its collector paces itself by the JS heap,
// which those buffers barely touch: a 1 GiB upload or spool left 150 to 450 MB of dead
// buffers behind. Collecting after every few MiB moved keeps a process near its
// resting size, at a few ms per collection (figures in BENCHMARKS.md).

/**
 * A counter of bytes moved that collects garbage each time `everyBytes` have passed.
 * Make one per kind of transfer at module level, so collections follow the bytes the
 * process moves, not the number of transfers running.
 */
export function collectEvery(everyBytes: number): (bytes: number) => void {
  let since = 0;
  return (bytes) => {
    since += bytes;
    if (since < everyBytes) return;
    since = 0;
    Bun.gc(true); // synchronous: a Bun.gc(false) hint left the peak where it was
  };
}
