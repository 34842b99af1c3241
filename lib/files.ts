// Video and MP3 bytes live in MongoDB GridFS: bucket `videos` for uploads, `mp3s`
// for results. Files carry their owner and original name in their metadata.
import { pipeline } from "node:stream/promises";
import type { Readable, Transform } from "node:stream";
import { type Db, type GridFSFile, GridFSBucket, ObjectId } from "mongodb";

export const BUCKETS = ["videos", "mp3s"] as const;
export type BucketName = (typeof BUCKETS)[number];

export interface FileMetadata {
  owner: string;
  filename: string;
  contentType: string;
  jobId?: string;
}

export interface StoredFile {
  id: ObjectId;
  bytes: number;
}

export function fileStore(db: Db) {
  const buckets = Object.fromEntries(BUCKETS.map((name) => [name, new GridFSBucket(db, { bucketName: name })])) as Record<
    BucketName,
    GridFSBucket
  >;

  return {
    /**
     * Streams `source` (through optional transforms, e.g. a size limit) into GridFS.
     * On any error the partial file is removed before the error is rethrown.
     */
    async upload(bucket: BucketName, source: Readable, metadata: FileMetadata, ...transforms: Transform[]): Promise<StoredFile> {
      const id = new ObjectId();
      const sink = buckets[bucket].openUploadStreamWithId(id, metadata.filename, { metadata });
      try {
        await pipeline([source, ...transforms, sink]);
      } catch (error) {
        await sink.abort().catch(() => {});
        await removeQuietly(buckets[bucket], id);
        throw error;
      }
      return { id, bytes: sink.length };
    },

    /** The file's bytes, or the inclusive byte range [start, end]. */
    download(bucket: BucketName, id: ObjectId, range?: { start: number; end: number }): Readable {
      return buckets[bucket].openDownloadStream(id, range ? { start: range.start, end: range.end + 1 } : {});
    },

    async stat(bucket: BucketName, id: ObjectId): Promise<GridFSFile | null> {
      return (await buckets[bucket].find({ _id: id }, { limit: 1 }).next()) ?? null;
    },

    /** Removes a file; a file that is already gone is not an error. */
    remove: (bucket: BucketName, id: ObjectId) => removeQuietly(buckets[bucket], id),
  };
}

export type FileStore = ReturnType<typeof fileStore>;

/** The name a person gave a file, without directories, control characters, quotes or excess length. */
export function cleanFilename(name: string): string {
  const base = name.split(/[\\/]/).pop() ?? "";
  const clean = base.replace(/[\u0000-\u001f\u007f"]/g, "").trim().slice(0, 200);
  return clean && clean !== "." && clean !== ".." ? clean : "video";
}

/** The MP3's name for a video's name: `holiday.mp4` → `holiday.mp3`. */
export function mp3Filename(videoName: string): string {
  const stem = cleanFilename(videoName).replace(/\.[^.]{1,10}$/, "") || "audio";
  return `${stem}.mp3`;
}

async function removeQuietly(bucket: GridFSBucket, id: ObjectId): Promise<void> {
  try {
    await bucket.delete(id);
  } catch (error) {
    if (!(error instanceof Error) || !/FileNotFound|File not found/i.test(error.message)) throw error;
  }
}
