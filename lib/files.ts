// Video and MP3 bytes live in MongoDB GridFS: bucket `videos` for uploads, `mp3s`
// for results, `covers` for the MP3s' front covers (JPEG). Files carry their owner and original name in their metadata, and
// stream in and out (also as HTTP answers with Range support) without being buffered.
import { open } from "node:fs/promises";
import { Readable, type Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { type Binary, type Db, GridFSBucket, type GridFSFile, MongoGridFSChunkError, ObjectId } from "mongodb";
import parseRange from "range-parser";
import { CHUNK_BYTES, chunkGatherer, WRITE_BATCH_CHUNKS } from "./chunk-gatherer.ts";
import { cleanUp } from "./cleanup.ts";
import type { Logger } from "./log.ts";
import { collectEvery } from "./memory.ts";
import { isMongoUnavailable } from "./mongo.ts";
import { NotFound, problemResponse } from "./problem.ts";

// Re-exported for the services that import them from here.
export { cleanFilename, mp3Filename } from "./filenames.ts";

export const BUCKETS = ["videos", "mp3s", "covers"] as const;
export type BucketName = (typeof BUCKETS)[number];

export interface FileMetadata {
  owner: string;
  filename: string;
  contentType: string;
  jobId?: string;
}

/** Chunks fetched per round trip when reading a file (~1 MiB; see `readChunks`). */
const READ_BATCH_CHUNKS = 4;
/** Batches asked for before the first of them is used: the round trips overlap. */
const READ_AHEAD_BATCHES = 3;
/**
 * A chunk read leaves two dead copies behind (the socket's pieces, the driver's reply), so a
 * full collection per 16 MiB let the converter reach ~55 MB above rest on a 1 GiB input. A
 * young one per 4 MiB between them takes ~8 MB off that at no CPU measured; one per MiB
 * ~5 MB more for ~0.7 s of CPU per GiB, and a full one per 8 MiB costs ~2 s (each takes
 * 15-30 ms with the converter's heap). Figures in the commits.
 */
const spooled = collectEvery(16 * 1024 * 1024, 4 * 1024 * 1024);

export interface ReadOptions {
  /** The first byte (default 0). */
  start?: number;
  /** The byte after the last (default the file's length). */
  end?: number;
  signal?: AbortSignal;
}

export interface StoredFile {
  id: ObjectId;
  bytes: number;
}

/** GridFS's default chunk size (255 KiB), also of files written chunk by chunk (`writeChunks`). */
export { CHUNK_BYTES };

export function fileStore(db: Db, { log }: { log?: Logger } = {}) {
  const buckets = Object.fromEntries(
    BUCKETS.map((name) => [name, new GridFSBucket(db, { bucketName: name })]),
  ) as Record<BucketName, GridFSBucket>;

  /** The file's bytes, or the inclusive byte range [start, end]. */
  const download = (bucket: BucketName, id: ObjectId, range?: { start: number; end: number }): Readable =>
    buckets[bucket].openDownloadStream(id, range ? { start: range.start, end: range.end + 1 } : {});

  const chunksOf = (bucket: BucketName) => db.collection(`${bucket}.chunks`);

  const stat = async (bucket: BucketName, id: ObjectId): Promise<GridFSFile | null> =>
    (await buckets[bucket].find({ _id: id }, { limit: 1 }).next()) ?? null;

  /**
   * The file's bytes in order, chunk by chunk, from byte `start` (default 0) to `end`
   * (exclusive, default the file's end). Chunks are fetched READ_BATCH_CHUNKS at a time by
   * their number, READ_AHEAD_BATCHES batches ahead: the round trips overlap, and what is
   * held stays near READ_AHEAD_BATCHES × READ_BATCH_CHUNKS chunks (~3 MiB). Checks what the
   * driver checks: every chunk there, of the right size. Stops (rejects with the signal's
   * reason) when `signal` is aborted; throws NotFound if the file is gone.
   */
  async function* readChunks(
    bucket: BucketName,
    id: ObjectId,
    { start = 0, end, signal }: ReadOptions = {},
  ): AsyncGenerator<Uint8Array> {
    const file = await stat(bucket, id);
    if (!file) throw new NotFound(`${bucket} file ${id} is gone`);
    const { chunkSize, length } = file;
    const stop = Math.min(end ?? length, length);
    if (start >= stop) return;
    const first = Math.floor(start / chunkSize);
    const last = Math.ceil(stop / chunkSize); // exclusive
    const chunks = db.collection<{ files_id: ObjectId; n: number; data: Binary }>(`${bucket}.chunks`);
    const fetchBatch = (from: number) => {
      const to = Math.min(from + READ_BATCH_CHUNKS, last);
      const query = { files_id: id, n: { $gte: from, $lt: to } };
      return chunks.find(query, { sort: { n: 1 }, projection: { n: 1, data: 1 } }).toArray();
    };
    const ahead: Promise<Awaited<ReturnType<typeof fetchBatch>>>[] = [];
    let next = first;
    const refill = () => {
      for (; ahead.length < READ_AHEAD_BATCHES && next < last; next += READ_BATCH_CHUNKS) {
        const batch = fetchBatch(next);
        batch.catch(() => {}); // awaited in turn; one left behind by an early stop must not go unhandled
        ahead.push(batch);
      }
    };
    let expected = first;
    refill();
    while (ahead.length) {
      const batch = await ahead.shift()!;
      signal?.throwIfAborted();
      refill();
      for (const chunk of batch) {
        if (chunk.n !== expected)
          throw new MongoGridFSChunkError(`${bucket} file ${id}: chunk ${expected} is missing (got ${chunk.n})`);
        const data = chunk.data.buffer;
        const size = Math.min(chunkSize, length - expected * chunkSize);
        if (data.byteLength !== size)
          throw new MongoGridFSChunkError(
            `${bucket} file ${id}: chunk ${expected} has ${data.byteLength} bytes, not ${size}`,
          );
        const from = expected === first ? start - first * chunkSize : 0;
        const to = expected === last - 1 ? stop - expected * chunkSize : size;
        expected++;
        spooled(size);
        yield from === 0 && to === size ? data : data.subarray(from, to);
      }
    }
    if (expected !== last) throw new MongoGridFSChunkError(`${bucket} file ${id}: chunk ${expected} is missing`);
  }

  /** The indexes the driver makes on a bucket's first upload: a chunked write may come first. */
  async function ensureIndexes(bucket: BucketName): Promise<void> {
    await chunksOf(bucket).createIndex({ files_id: 1, n: 1 }, { unique: true });
    await db.collection(`${bucket}.files`).createIndex({ filename: 1, uploadDate: 1 });
  }

  // Made once per bucket by `writeFile`, as the driver's upload stream checks them once.
  const indexed = new Map<BucketName, Promise<void>>();
  const indexesOnce = (bucket: BucketName): Promise<void> => {
    let making = indexed.get(bucket);
    if (!making) {
      making = ensureIndexes(bucket);
      making.catch(() => indexed.delete(bucket)); // tried again by the next file
      indexed.set(bucket, making);
    }
    return making;
  };

  /**
   * Stores chunks `firstN`, `firstN + 1`, … of file `id` (each CHUNK_BYTES but a file's last),
   * with no files document yet: until `finishFile` the file does not exist for readers.
   * A chunk number already stored fails (duplicate key), so two writers never mix.
   */
  async function writeChunks(bucket: BucketName, id: ObjectId, firstN: number, chunks: Uint8Array[]): Promise<void> {
    // One insertOne per chunk, all at once, not an insertMany: the driver copies an insertMany's
    // bytes four times (each a buffer for the collector to free), an insertOne's twice.
    const chunksCollection = chunksOf(bucket);
    const inserts = await Promise.allSettled(
      chunks.map((data, index) =>
        chunksCollection.insertOne({ _id: new ObjectId(), files_id: id, n: firstN + index, data }),
      ),
    );
    // Only once every insert is done: a caller that gives up must not race a late one.
    const failed = inserts.find((insert) => insert.status === "rejected");
    if (failed) throw failed.reason;
  }

  /** Makes the chunks stored for `id` a file of `length` bytes: its files document, as the driver writes it. */
  async function finishFile(bucket: BucketName, id: ObjectId, length: number, metadata: FileMetadata): Promise<void> {
    await db.collection(`${bucket}.files`).insertOne({
      _id: id,
      length,
      chunkSize: CHUNK_BYTES,
      uploadDate: new Date(),
      filename: metadata.filename,
      metadata,
    });
  }

  /**
   * Stores `pieces` (of any size) as a new GridFS file: gathered into chunks, written
   * WRITE_BATCH_CHUNKS at a time with `writeChunks` while the next are gathered, then its
   * files document. Not the driver's upload stream: it zero-fills a new buffer per chunk (one
   * more for the collector to free) and inserts through Node streams.
   * Each piece is copied before the next is asked for: the source may reuse or free it then.
   * `stop` is called when a write fails while the next piece is awaited (to end the source).
   *
   * On any error the partial file is removed before the error is rethrown, once every insert
   * the file started is done (one landing after the removal would leave a chunk without a
   * file); if MongoDB itself failed (and the removal with it), the removal goes to the
   * background at once and is retried until MongoDB answers again (lib/cleanup.ts).
   */
  async function writeFile(
    bucket: BucketName,
    pieces: AsyncIterable<Uint8Array>,
    metadata: FileMetadata,
    stop?: (error: Error) => void,
  ): Promise<StoredFile> {
    await indexesOnce(bucket);
    const id = new ObjectId();
    const chunks = chunkGatherer();
    let writing: Promise<void> = Promise.resolve();
    let busy = false;
    const writeFull = () => {
      const { n, full } = chunks.take();
      busy = true;
      writing = writeChunks(bucket, id, n, full).then(
        () => {
          busy = false;
          chunks.written(full);
        },
        (error: Error) => {
          busy = false;
          stop?.(error);
          throw error;
        },
      );
      writing.catch(() => {}); // awaited in turn, by the loop or the clean-up
    };
    try {
      for await (const piece of pieces) {
        chunks.add(piece);
        // A full chunk goes at once while nothing is being written, else WRITE_BATCH_CHUNKS wait for the write.
        if (!chunks.fullCount || (busy && chunks.fullCount < WRITE_BATCH_CHUNKS)) continue;
        await writing;
        writeFull();
      }
      await writing;
      chunks.end();
      writeFull();
      await writing;
      await finishFile(bucket, id, chunks.length, metadata);
    } catch (error) {
      await writing.catch(() => {});
      // With MongoDB away, a removal tried now would wait out a server selection as well,
      // holding back the error (a 503 while it is away): it goes to the background at once.
      const what = `remove the partial ${bucket} file ${id}`;
      await cleanUp(what, () => removeQuietly(buckets[bucket], id), { log, deferred: isMongoUnavailable(error) });
      throw error;
    }
    return { id, bytes: chunks.length };
  }

  return {
    /**
     * Streams `source` (through optional transforms, e.g. a size limit) into GridFS, as
     * `writeFile` stores it (the driver's upload stream is not used: see there). On any error
     * the partial file is removed before the error is rethrown (see `writeFile`).
     */
    async upload(
      bucket: BucketName,
      source: Readable,
      metadata: FileMetadata,
      ...transforms: Transform[]
    ): Promise<StoredFile> {
      // A failed write stops the source (and the pipeline with it) rather than waiting for its next bytes.
      const store = (pieces: AsyncIterable<Uint8Array>) =>
        writeFile(bucket, pieces, metadata, (error) => source.destroy(error));
      return (await pipeline([source, ...transforms, store])) as unknown as StoredFile;
    },

    writeFile,

    download,
    stat,

    /**
     * Copies a file to disk and answers its size. Not `download()` piped into a file:
     * the driver's download stream fetches 16 MiB batches and Bun frees those buffers
     * only when it collects, so a 1 GiB video left ~450 MB of dead buffers behind.
     * `readChunks` fetches a few chunks at a time, several batches ahead, and collects now
     * and then, which keeps the process near its resting size.
     */
    async saveToFile(bucket: BucketName, id: ObjectId, path: string, signal?: AbortSignal): Promise<number> {
      const out = await open(path, "w");
      let written = 0;
      try {
        for await (const data of readChunks(bucket, id, { signal })) {
          // A write may take less than it was given; what it leaves is written next.
          for (let at = 0; at < data.byteLength; ) at += (await out.write(data, at, data.byteLength - at)).bytesWritten;
          written += data.byteLength;
        }
      } finally {
        await out.close();
      }
      return written;
    },

    readChunks,

    /** The file's bytes from `start` on, as `readChunks` fetches them (for a pipe into ffmpeg). */
    openReader: (bucket: BucketName, id: ObjectId, options: ReadOptions = {}): Readable =>
      Readable.from(readChunks(bucket, id, options), { objectMode: false }),

    /**
     * An HTTP answer with the file's bytes: 200 whole, 206 for a `Range` request (the
     * first range, when several are asked for), 416 for a range past the end, 404 if gone.
     */
    async respond(
      bucket: BucketName,
      id: ObjectId,
      request: Request,
      headers: Record<string, string>,
    ): Promise<Response> {
      const file = await stat(bucket, id);
      if (!file) throw new NotFound("the file is gone");
      const common = { ...headers, "accept-ranges": "bytes", etag: `"${id}"` };
      const header = request.headers.get("range");
      const ranges = header ? parseRange(file.length, header, { combine: true }) : undefined;
      if (ranges === -1) {
        return problemResponse(
          {
            type: "about:blank",
            title: "Range Not Satisfiable",
            status: 416,
            detail: `the file has ${file.length} bytes`,
          },
          { "content-range": `bytes */${file.length}` },
        );
      }
      // A malformed Range header is ignored, as RFC 9110 allows.
      const range = Array.isArray(ranges) && ranges.type === "bytes" ? ranges[0] : undefined;
      const body = Readable.toWeb(download(bucket, id, range)) as unknown as ReadableStream<Uint8Array>;
      if (!range) return new Response(body, { headers: { ...common, "content-length": String(file.length) } });
      return new Response(body, {
        status: 206,
        headers: {
          ...common,
          "content-length": String(range.end - range.start + 1),
          "content-range": `bytes ${range.start}-${range.end}/${file.length}`,
        },
      });
    },

    /** Removes every file a job left in the bucket (e.g. a partial download of a killed worker). */
    async removeJobFiles(bucket: BucketName, jobId: string): Promise<void> {
      const leftovers = await buckets[bucket].find({ "metadata.jobId": jobId }, { projection: { _id: 1 } }).toArray();
      for (const { _id } of leftovers) await removeQuietly(buckets[bucket], _id);
    },

    /** Removes a file (or the chunks of one never finished); a file that is already gone is not an error. */
    remove: (bucket: BucketName, id: ObjectId) => removeQuietly(buckets[bucket], id),

    // ── a file written chunk by chunk, over several requests (tus uploads: gateway/uploads/) ──
    ensureIndexes,
    writeChunks,

    /** Removes the chunks of `id` from number `n` on (a write whose end was never recorded). */
    async removeChunksFrom(bucket: BucketName, id: ObjectId, n: number): Promise<void> {
      await chunksOf(bucket).deleteMany({ files_id: id, n: { $gte: n } });
    },

    finishFile,
  };
}

export type FileStore = ReturnType<typeof fileStore>;

async function removeQuietly(bucket: GridFSBucket, id: ObjectId): Promise<void> {
  try {
    await bucket.delete(id);
  } catch (error) {
    if (!(error instanceof Error) || !/FileNotFound|File not found/i.test(error.message)) throw error;
  }
}
