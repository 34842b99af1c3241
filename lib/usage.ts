// What a user holds right now, for the quotas: jobs under way (queued or converting) and
// bytes stored (videos and MP3s). The gateway checks both before and after it takes a
// job; the converter checks the bytes before it downloads a link's video. Both are
// answered from an index alone, so a check costs the same however large the files are.
import type { Db } from "mongodb";
import { BUCKETS, type BucketName } from "./files.ts";
import type { Job, JobStatus } from "./jobs.ts";
import { formatBytes } from "./upload.ts";

/** The statuses that count against MAX_ACTIVE_JOBS. */
export const ACTIVE_STATUSES: readonly JobStatus[] = ["queued", "converting"];

/** Why a video was refused for USER_STORAGE_BYTES, in words for its owner (a 413 at the gateway, a failed link job). */
export const storageQuotaMessage = (limit: number, used: number) =>
  `the video would pass your storage quota of ${formatBytes(limit)} (USER_STORAGE_BYTES; ${formatBytes(Math.max(0, used))} used): delete some conversions to make room`;

export function usageStore(db: Db) {
  const jobs = db.collection<Job>("jobs");
  const filesOf = (bucket: BucketName) => db.collection<{ length: number }>(`${bucket}.files`);

  /** One bucket's bytes of `owner`: the sum of its GridFS files' `length` (unfinished uploads have no files document yet). */
  async function bucketBytes(bucket: BucketName, owner: string): Promise<number> {
    const [sum] = await filesOf(bucket)
      .aggregate<{ bytes: number }>([
        { $match: { "metadata.owner": owner } },
        { $group: { _id: null, bytes: { $sum: "$length" } } },
      ])
      .toArray();
    return Number(sum?.bytes ?? 0);
  }

  return {
    /**
     * Idempotent, run at the gateway's start. {userId, status} lets the count of a user's
     * active jobs read two short index ranges (a COUNT_SCAN); {metadata.owner, length} on
     * each bucket's files lets the sum read the index alone (a covered scan: no file
     * document is fetched), in time proportional to the number of the user's files.
     */
    async ensureIndexes() {
      await jobs.createIndex({ userId: 1, status: 1 }, { name: "jobs_by_user_status" });
      for (const bucket of BUCKETS)
        await filesOf(bucket).createIndex({ "metadata.owner": 1, length: 1 }, { name: "files_by_owner_length" });
    },

    /** The user's jobs that are queued or converting. */
    activeJobs: (userId: string) => jobs.countDocuments({ userId, status: { $in: [...ACTIVE_STATUSES] } }),

    /** Bytes the user stores: every video, MP3 and cover in GridFS whose metadata names them as owner. */
    async storedBytes(owner: string): Promise<number> {
      const sums = await Promise.all(BUCKETS.map((bucket) => bucketBytes(bucket, owner)));
      return sums.reduce((total, bytes) => total + bytes, 0);
    },
  };
}

export type UsageStore = ReturnType<typeof usageStore>;
