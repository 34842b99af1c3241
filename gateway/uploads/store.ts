// Resumable uploads in MongoDB (collection `uploads`), one document each, so that any
// gateway replica can take the next request of an upload another began. Its bytes are in
// GridFS bucket `videos` under the upload's own id, written as full chunks as they fill
// (lib/files.ts `writeChunks`); the bytes past the last full chunk are kept in the
// document (`tail`), never in one replica's memory. The document says how far the
// stored bytes go (`offset`): it is only ever moved to bytes already stored.
//
// One request writes at a time: a PATCH takes the upload's `writer` lease with a write
// conditional on the offset the client sent and on no live lease, renews it while it
// reads (gateway/uploads/receive.ts), and gives it back with its last write. A lease
// whose holder died runs out after LEASE_MS; a request that finds the lease held asks
// its holder to stop (`writer.stop`, read at each renewal), so a PATCH whose client has
// gone quietly (a half-open connection) hands over within a renewal.
import { type Binary, type Collection, type Db, ObjectId } from "mongodb";
import type { ConversionOptions } from "../../lib/options.ts";
import { Conflict, Gone, HttpProblem, NotFound } from "../../lib/problem.ts";
import { UPLOAD_TTL_MS } from "./protocol.ts";

/** How long a PATCH's lease holds without renewal (a dead replica's lease is taken over after this). */
export const LEASE_MS = 15_000;

export interface UploadRecord {
  /** Also the id of its GridFS file in `videos`. */
  _id: ObjectId;
  userId: string;
  /** Upload-Length: the file's size. */
  length: number;
  /** Bytes stored: full chunks up to `offset - tail.length`, then `tail`. */
  offset: number;
  tail: Binary | Uint8Array;
  filename: string;
  declaredType: string;
  /** Upload-Metadata as sent. */
  metadata: string;
  /** The conversion options it asked for (not yet with the defaults). */
  options: ConversionOptions;
  /** What the first bytes show it is, once enough have arrived. */
  sniffed?: string;
  /** `received`: every byte is stored and the GridFS file is whole. */
  state: "receiving" | "received";
  /** The job's id, chosen when the last byte is stored, so finishing twice makes one job. */
  jobId?: ObjectId;
  /** When its job was made and queued. */
  queuedAt?: Date;
  createdAt: Date;
  /** UPLOAD_TTL_MS after bytes last arrived; then it is removed (gateway/uploads/sweeper.ts). */
  expiresAt: Date;
  writer?: { id: ObjectId; until: Date; stop?: boolean };
  /** Being removed (expired or terminated). */
  sweepingAt?: Date;
}

/** What is durably stored after a write: the offset and the bytes past the last full chunk. */
export interface Stored {
  offset: number;
  tail: Uint8Array;
}

export const tailOf = (upload: Pick<UploadRecord, "tail">): Uint8Array =>
  upload.tail instanceof Uint8Array ? upload.tail : upload.tail.buffer;

export const NO_SUCH_UPLOAD = "no such upload among yours (never made, finished long ago, removed or expired)";

/** 410: the upload expired; it is about to be removed. */
const expired = () => new Gone("the upload expired (24 hours without new bytes) and is being removed; start again");

/** 423: another request is writing to the upload; it has been asked to stop. */
const locked = () =>
  new HttpProblem(
    423,
    "Locked",
    "another request is still writing to this upload; it has been asked to stop: HEAD the upload again in a moment",
    {},
    { "Retry-After": "1" },
  );

export function uploadStore(db: Db) {
  const uploads: Collection<UploadRecord> = db.collection<UploadRecord>("uploads");
  const later = (ms: number) => new Date(Date.now() + ms);

  /** The caller's upload, or 404 (someone else's is no different from none), or 410 once expired. */
  async function owned(id: ObjectId, userId: string): Promise<UploadRecord> {
    const upload = await uploads.findOne({ _id: id, userId });
    if (!upload || upload.sweepingAt) throw new NotFound(NO_SUCH_UPLOAD);
    if (upload.expiresAt <= new Date()) throw expired();
    return upload;
  }

  return {
    async ensureIndexes(): Promise<void> {
      await uploads.createIndex({ userId: 1, state: 1 }, { name: "uploads_by_user_state" });
      await uploads.createIndex({ expiresAt: 1 }, { name: "uploads_by_expiry" });
    },

    create: async (upload: UploadRecord) => void (await uploads.insertOne(upload)),
    owned,

    /** What the user's unfinished uploads hold back: their count, and the bytes they announced. */
    async reserved(userId: string): Promise<{ count: number; bytes: number }> {
      const [sum] = await uploads
        .aggregate<{ count: number; bytes: number }>([
          { $match: { userId, state: "receiving", expiresAt: { $gt: new Date() } } },
          { $group: { _id: null, count: { $sum: 1 }, bytes: { $sum: "$length" } } },
        ])
        .toArray();
      return { count: Number(sum?.count ?? 0), bytes: Number(sum?.bytes ?? 0) };
    },

    /**
     * The lease for a PATCH at `offset` (a received upload too: a PATCH at its end makes its
     * job, if that failed before), and whether it was taken over from a writer whose lease ran
     * out (whose late chunks past the offset must go). Else why not: 404, 410, 409 for another
     * offset, 423 (and the holder asked to stop) while another request writes.
     */
    async claim(
      id: ObjectId,
      userId: string,
      offset: number,
      writer: ObjectId,
    ): Promise<{ upload: UploadRecord; tookOver: boolean }> {
      const now = new Date();
      const lease = { id: writer, until: later(LEASE_MS) };
      const before = await uploads.findOneAndUpdate(
        {
          _id: id,
          userId,
          offset,
          expiresAt: { $gt: now },
          sweepingAt: { $exists: false },
          $or: [{ writer: { $exists: false } }, { "writer.until": { $lte: now } }],
        },
        { $set: { writer: lease } },
        { returnDocument: "before" },
      );
      if (before) return { upload: { ...before, writer: lease }, tookOver: before.writer !== undefined };
      const upload = await owned(id, userId);
      if (upload.offset !== offset)
        throw new Conflict(
          `Upload-Offset is ${offset} but the upload has ${upload.offset} bytes: HEAD it and send from there`,
        );
      await uploads.updateOne({ _id: id, "writer.until": { $gt: now } }, { $set: { "writer.stop": true } });
      throw locked();
    },

    /** Renews the lease and records what is stored so far; null once the lease is lost; `stop` if asked to. */
    async renew(id: ObjectId, writer: ObjectId, stored: Stored): Promise<{ stop: boolean } | null> {
      const after = await uploads.findOneAndUpdate(
        { _id: id, "writer.id": writer },
        { $set: { "writer.until": later(LEASE_MS), offset: stored.offset, tail: Buffer.from(stored.tail) } },
        { returnDocument: "after", projection: { writer: 1, sweepingAt: 1 } },
      );
      return after ? { stop: after.writer?.stop === true || after.sweepingAt !== undefined } : null;
    },

    /** Records what is stored and gives the lease back; false if the lease was lost meanwhile, or the upload is being removed. */
    async release(id: ObjectId, writer: ObjectId, stored: Stored, sniffed?: string): Promise<boolean> {
      const result = await uploads.updateOne(
        { _id: id, "writer.id": writer, sweepingAt: { $exists: false } },
        {
          $set: {
            offset: stored.offset,
            tail: Buffer.from(stored.tail),
            expiresAt: later(UPLOAD_TTL_MS),
            ...(sniffed ? { sniffed } : {}),
          },
          $unset: { writer: "" },
        },
      );
      return result.matchedCount === 1;
    },

    /** Every byte is stored and the file is whole: the job's id is chosen; the lease is kept (the job is made next). */
    async received(id: ObjectId, writer: ObjectId, length: number, sniffed: string): Promise<UploadRecord | null> {
      return uploads.findOneAndUpdate(
        { _id: id, "writer.id": writer, sweepingAt: { $exists: false } },
        {
          $set: {
            state: "received",
            offset: length,
            tail: Buffer.alloc(0),
            sniffed,
            jobId: new ObjectId(),
            expiresAt: later(UPLOAD_TTL_MS),
            "writer.until": later(LEASE_MS),
          },
        },
        { returnDocument: "after" },
      );
    },

    /** The job is made and queued (or making it failed: `queued` false); the lease is given back. */
    async finished(id: ObjectId, writer: ObjectId, queued: boolean): Promise<void> {
      await uploads.updateOne(
        { _id: id, "writer.id": writer },
        { $unset: { writer: "" }, ...(queued ? { $set: { queuedAt: new Date() } } : {}) },
      );
    },

    /** Gives the lease back as it was (a PATCH refused before it stored anything). */
    async letGo(id: ObjectId, writer: ObjectId): Promise<void> {
      await uploads.updateOne({ _id: id, "writer.id": writer }, { $unset: { writer: "" } });
    },

    /** Marks the caller's upload as being removed (termination) and asks a writer to stop; null if none. */
    async claimForRemoval(id: ObjectId, userId: string): Promise<UploadRecord | null> {
      return uploads.findOneAndUpdate(
        { _id: id, userId, sweepingAt: { $exists: false } },
        { $set: { sweepingAt: new Date() } },
        { returnDocument: "after" },
      );
    },

    /** An expired upload no live sweeper holds, claimed for removal (a claim older than `leaseMs` is taken over). */
    async claimExpired(now: Date, leaseMs: number): Promise<UploadRecord | null> {
      return uploads.findOneAndUpdate(
        {
          expiresAt: { $lte: now },
          $or: [{ sweepingAt: { $exists: false } }, { sweepingAt: { $lte: new Date(now.getTime() - leaseMs) } }],
        },
        { $set: { sweepingAt: now } },
        { returnDocument: "after" },
      );
    },

    /** Whether the upload is still kept (not removed, not being removed). */
    kept: async (id: ObjectId) => (await uploads.countDocuments({ _id: id, sweepingAt: { $exists: false } })) > 0,
    remove: async (id: ObjectId) => void (await uploads.deleteOne({ _id: id })),
  };
}

export type UploadStore = ReturnType<typeof uploadStore>;
