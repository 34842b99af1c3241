// One PATCH's bytes into GridFS, for the request holding the upload's lease
// (gateway/uploads/store.ts). Bytes are gathered into GridFS chunks (255 KiB); full chunks
// are written in batches as they fill, the next batch read while one is written, so a
// PATCH of any size holds a few MiB. Whatever stops the body (its end, the client gone, a
// request asking to take over), what arrived is kept: the full chunks in GridFS, the rest
// in the upload's document. The first bytes are sniffed as soon as enough have arrived
// (lib/upload.ts): not a video or an audio file, and the upload is refused (NotAVideo) before
// a chunk of it is written. The last byte makes the chunks a GridFS file.
import type { ObjectId } from "mongodb";
import { chunkGatherer, WRITE_BATCH_CHUNKS } from "../../lib/chunk-gatherer.ts";
import { CHUNK_BYTES, type FileStore } from "../../lib/files.ts";
import type { Logger } from "../../lib/log.ts";
import { isDuplicateKey } from "../../lib/mongo.ts";
import { Conflict, ContentTooLarge, NotFound } from "../../lib/problem.ts";
import { SNIFF_BYTES, sniffMedia } from "../../lib/upload.ts";
import { NO_SUCH_UPLOAD, type Stored, tailOf, type UploadRecord, type UploadStore } from "./store.ts";

/** How often a writing PATCH renews its lease and looks whether it is asked to stop. */
const RENEW_MS = 2000;

export interface ReceiveDeps {
  files: FileStore;
  uploads: UploadStore;
  log: Logger;
}

export type Outcome =
  /** Bytes stored, the upload not complete; the lease is given back. `stopped`: another request asked to take over. */
  | { kind: "stored"; offset: number; stopped: boolean }
  /** Every byte is stored and the file is whole; the lease is still held, for making the job. */
  | { kind: "received"; upload: UploadRecord };

/** The bytes of the upload from its stored offset on, gathered into GridFS chunks (lib/chunk-gatherer.ts). */
function uploadGatherer(upload: UploadRecord) {
  const tail = tailOf(upload);
  const firstN = Math.floor(upload.offset / CHUNK_BYTES);
  const chunks = chunkGatherer({ n: firstN, tail });
  let storedN = firstN; // every chunk below this one is stored
  const received = () => upload.offset + chunks.length;
  return {
    get received() {
      return received();
    },
    get fullChunks() {
      return chunks.fullCount;
    },
    add: chunks.add,
    head: chunks.head,
    /** The full chunks to write next, and the number of the first. */
    take(): { n: number; chunks: Buffer[] } {
      const { n, full } = chunks.take();
      return { n, chunks: full };
    },
    /** The chunks before `n` are stored; `written`, once the driver is done with them, are filled again. */
    storedUpTo(n: number, written: Buffer[]) {
      storedN = n;
      chunks.written(written);
    },
    /** What is durably stored now: the tail as it was until a chunk of this request is written. */
    stored: (): Stored =>
      storedN > firstN ? { offset: storedN * CHUNK_BYTES, tail: new Uint8Array(0) } : { offset: upload.offset, tail },
    /** Once every full chunk is stored: the offset, and the bytes past the last full chunk. */
    rest: (): Stored => ({ offset: received(), tail: chunks.unfinished() }),
  };
}

/**
 * Renews the lease every RENEW_MS with what is stored so far; `stop` is called when another
 * request asks to take over or the lease is lost. `end()` waits for a renewal under way, so
 * none lands after the last write.
 */
function leaseKeeper(deps: ReceiveDeps, id: ObjectId, writer: ObjectId, stored: () => Stored, stop: () => void) {
  let renewing: Promise<void> | undefined;
  let stopped = false;
  const timer = setInterval(() => {
    if (renewing) return;
    renewing = deps.uploads
      .renew(id, writer, stored())
      .then((answer) => {
        if (answer && !answer.stop) return;
        stopped = true;
        stop();
      })
      .catch((error) => deps.log.warn({ event: "upload.renew_failed", err: error, uploadId: id }, "lease not renewed"))
      .finally(() => {
        renewing = undefined;
      });
  }, RENEW_MS);
  return {
    get stopped() {
      return stopped;
    },
    async end() {
      clearInterval(timer);
      await renewing;
    },
  };
}

/**
 * Frees a body piece once it is copied into the chunks, rather than leaving it to the next
 * collection: detaching its memory (transfer to nothing) frees it at once. Only a piece that
 * is the whole of its memory, as Bun hands request bodies over, is ours to free.
 */
function release(piece: Uint8Array) {
  if (piece.byteOffset !== 0 || piece.buffer.byteLength !== piece.byteLength) return;
  try {
    (piece.buffer as ArrayBuffer).transfer(0);
  } catch {
    // not detachable: the collector frees it
  }
}

/** Reads `body` into the upload (which this request holds: `writer`); see Outcome. Throws NotAVideo, 413, 409, 404. */
export async function receive(
  deps: ReceiveDeps,
  upload: UploadRecord,
  writer: ObjectId,
  body: ReadableStream<Uint8Array> | null,
): Promise<Outcome> {
  const { files } = deps;
  const id = upload._id;
  const bytes = uploadGatherer(upload);
  const reader = body?.getReader();
  const lease = leaseKeeper(deps, id, writer, bytes.stored, () => void reader?.cancel().catch(() => {}));
  let sniffed = upload.sniffed;
  let overrun = false;
  let writing: Promise<void> = Promise.resolve();
  const writeFull = () => {
    const { n, chunks } = bytes.take();
    writing = files.writeChunks("videos", id, n, chunks).then(() => {
      bytes.storedUpTo(n + chunks.length, chunks); // and the collections the bytes stored call for
    });
    // A write fails while the loop waits for the client's next bytes: the read ends at once and the
    // loop's `await writing` throws it. Unheard until then, the rejection would end the process.
    writing.catch(() => void reader?.cancel().catch(() => {}));
  };
  try {
    while (reader) {
      let piece: Awaited<ReturnType<typeof reader.read>>;
      try {
        piece = await reader.read();
      } catch {
        break; // the client is gone: what arrived is kept
      }
      if (piece.done) break;
      const room = upload.length - bytes.received;
      overrun = piece.value.length > room;
      bytes.add(overrun ? piece.value.subarray(0, room) : piece.value);
      release(piece.value);
      if (!sniffed && bytes.received >= Math.min(SNIFF_BYTES, upload.length))
        sniffed = (await sniffMedia(bytes.head())).mime;
      if (overrun) break;
      if (bytes.fullChunks >= WRITE_BATCH_CHUNKS) {
        await writing;
        writeFull();
      }
    }
    await writing;
    writeFull();
    await writing;
  } catch (error) {
    await writing.catch(() => {});
    await lease.end();
    await drain(reader);
    if (isDuplicateKey(error)) throw new Conflict("another request wrote to this upload meanwhile: HEAD it again");
    throw error;
  }
  await lease.end();
  if (overrun) {
    await drain(reader);
    await keep(deps, upload, writer, bytes.rest(), sniffed);
    throw new ContentTooLarge(`the body runs past Upload-Length (${upload.length} bytes); the bytes up to it are kept`);
  }
  if (bytes.received < upload.length)
    return { kind: "stored", offset: await keep(deps, upload, writer, bytes.rest(), sniffed), stopped: lease.stopped };
  // An upload shorter than SNIFF_BYTES is sniffed whole (chunk 0 is its only chunk, still in hand).
  sniffed ??= (await sniffMedia(bytes.head())).mime;
  return { kind: "received", upload: await complete(deps, upload, writer, bytes.rest(), sniffed) };
}

/** Records what is stored and gives the lease back; the upload removed meanwhile takes its chunks with it (404). */
async function keep(deps: ReceiveDeps, upload: UploadRecord, writer: ObjectId, rest: Stored, sniffed?: string) {
  if (await deps.uploads.release(upload._id, writer, rest, sniffed)) return rest.offset;
  throw await lost(deps, upload);
}

/** The last chunk (the tail), then the file document: a GridFS file like any other, then the record says so. */
async function complete(
  deps: ReceiveDeps,
  upload: UploadRecord,
  writer: ObjectId,
  rest: Stored,
  sniffed: string,
): Promise<UploadRecord> {
  const id = upload._id;
  if (upload.state !== "received") {
    const lastN = Math.floor((upload.length - rest.tail.length) / CHUNK_BYTES);
    if (rest.tail.length) await deps.files.writeChunks("videos", id, lastN, [rest.tail]);
    await deps.files.finishFile("videos", id, upload.length, {
      owner: upload.userId,
      filename: upload.filename,
      contentType: sniffed,
    });
  }
  const received =
    upload.state === "received" ? upload : await deps.uploads.received(id, writer, upload.length, sniffed);
  if (!received) throw await lost(deps, upload);
  return received;
}

/** The lease was lost: to a request that took over (409), or to a removal (404; the chunks written late go too). */
async function lost(deps: ReceiveDeps, upload: UploadRecord): Promise<Error> {
  if (await deps.uploads.kept(upload._id))
    return new Conflict("another request took over this upload meanwhile: HEAD it again");
  await deps.files.remove("videos", upload._id);
  return new NotFound(NO_SUCH_UPLOAD);
}

/** Most of a PATCH refused part-way is read and dropped, so its client reads the answer rather than a reset. */
const DRAIN_BYTES = 16 * 1024 * 1024;

async function drain(reader: ReadableStreamDefaultReader<Uint8Array> | undefined): Promise<void> {
  if (!reader) return;
  try {
    for (let left = DRAIN_BYTES; left > 0; ) {
      const { done, value } = await reader.read();
      if (done) return;
      left -= value.length;
    }
    await reader.cancel();
  } catch {
    // the client is gone
  }
}
