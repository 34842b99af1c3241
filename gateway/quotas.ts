// Per-user quotas, as the gateway applies them to a new job: at most MAX_ACTIVE_JOBS
// queued or converting (one more is 429 with Retry-After) and at most USER_STORAGE_BYTES
// of videos and MP3s (an upload that would pass it is 413 naming the quota).
//
// `admit` checks both before the body is read, so most refusals cost nothing; it is a
// snapshot, which concurrent requests can all pass. What holds the limits is a second
// step each, after the work is done:
// - a job holds one of the user's MAX_ACTIVE_JOBS slots (`claimSlot`; a retried job too):
//   a slot is taken by a conditional write on its document, and only from a job that is
//   no longer queued or converting, so of racing requests exactly as many get one as
//   there are free slots.
// - once the video is stored, the user's stored bytes, this video's included, must be
//   within the quota (`confirmStored`): whichever of two racing uploads checks last sees
//   the other's file, so the quota is not passed by uploads; at the edge both may be
//   refused (and a retry of one succeeds). MP3s are written by the converter after the
//   job was taken: they can take the stored bytes past the quota by their size, which
//   refuses the next upload until something is deleted.
import { type Db, ObjectId } from "mongodb";
import type { Job } from "../lib/jobs.ts";
import type { Logger } from "../lib/log.ts";
import { isDuplicateKey } from "../lib/mongo.ts";
import { HttpProblem } from "../lib/problem.ts";
import { ACTIVE_STATUSES, storageQuotaMessage, usageStore } from "../lib/usage.ts";
import type { UsageView } from "./models.ts";

/** MAX_ACTIVE_JOBS and USER_STORAGE_BYTES, as GET /account/usage names them. */
export type QuotaLimits = UsageView["limits"];

/** What a 429 for MAX_ACTIVE_JOBS asks the client to wait: about the time a short conversion takes. */
export const ACTIVE_JOBS_RETRY_SECONDS = 30;

/** A 429 naming MAX_ACTIVE_JOBS, with Retry-After. */
export const tooManyActiveJobs = (limit: number) =>
  new HttpProblem(
    429,
    "Too Many Requests",
    `you already have ${limit} conversion${limit === 1 ? "" : "s"} queued or converting, the most at once (MAX_ACTIVE_JOBS); send this one when one of them has finished`,
    { quota: "activeJobs", limit, retryAfter: ACTIVE_JOBS_RETRY_SECONDS },
    { "Retry-After": String(ACTIVE_JOBS_RETRY_SECONDS) },
  );

/** A 413 naming USER_STORAGE_BYTES and what is used of it. */
export const storageQuotaExceeded = (limit: number, used: number) =>
  new HttpProblem(413, "Content Too Large", storageQuotaMessage(limit, used), { quota: "storedBytes", limit, used });

/**
 * One of a user's MAX_ACTIVE_JOBS places for a job under way: `<userId>/<n>`, the job last
 * in it, and a token that changes with every take (what a take is conditional on).
 */
interface JobSlot {
  _id: string;
  jobId: ObjectId;
  claim: ObjectId;
}

export function quotas(db: Db, limits: QuotaLimits, log: Logger) {
  const usage = usageStore(db);
  const slots = jobSlots(db, limits.activeJobs);
  const refused = (userId: string, quota: keyof QuotaLimits) => {
    log.info({ event: "quota.refused", userId, quota }, "a new job was refused: quota");
  };

  /** The user's usage now, as GET /account/usage answers it. */
  async function current(userId: string): Promise<UsageView> {
    const [activeJobs, storedBytes] = await Promise.all([usage.activeJobs(userId), usage.storedBytes(userId)]);
    return { activeJobs, storedBytes, limits };
  }

  /**
   * Before the body is read: one job more is allowed, and the storage has room for
   * `declaredBytes` (what the request announces; 1 for a link, whose size is not known
   * yet). Answers the bytes the user may still store, to bound the upload's stream.
   */
  async function admit(userId: string, declaredBytes: number): Promise<number> {
    const now = await current(userId);
    if (now.activeJobs >= limits.activeJobs) {
      refused(userId, "activeJobs");
      throw tooManyActiveJobs(limits.activeJobs);
    }
    const left = limits.storedBytes - now.storedBytes;
    if (declaredBytes > left) {
      refused(userId, "storedBytes");
      throw storageQuotaExceeded(limits.storedBytes, now.storedBytes);
    }
    return left;
  }

  /** After the video is stored: the user's bytes, this video's included, are within the quota; else 413. */
  async function confirmStored(userId: string): Promise<void> {
    const stored = await usage.storedBytes(userId);
    if (stored <= limits.storedBytes) return;
    refused(userId, "storedBytes");
    throw storageQuotaExceeded(limits.storedBytes, stored);
  }

  /** The recorded job `jobId` takes one of the user's slots (see `jobSlots`), else 429. */
  async function claimSlot(userId: string, jobId: ObjectId): Promise<void> {
    if (await slots.claim(userId, jobId)) return;
    refused(userId, "activeJobs");
    throw tooManyActiveJobs(limits.activeJobs);
  }

  return { limits, ensureIndexes: usage.ensureIndexes, current, admit, confirmStored, claimSlot };
}

export type Quotas = ReturnType<typeof quotas>;

/**
 * A user's `count` slots for jobs under way. A slot is free when it was never used or its
 * job is no longer queued or converting (finished, deleted), or is the job claiming it (a
 * retried job, back in its old slot). Taking one is a write conditional on the slot's
 * token as it was read (or, for a new slot, an insert the unique `_id` lets only one
 * request make), so two requests never hold one slot.
 */
function jobSlots(db: Db, count: number) {
  const jobs = db.collection<Job>("jobs");
  const slots = db.collection<JobSlot>("job_slots");

  /** Puts `jobId` in the slot if it is still as read (`before`), or, with none before, does not exist yet. */
  async function take(id: string, before: JobSlot | undefined, jobId: ObjectId): Promise<boolean> {
    const claim = new ObjectId();
    if (before)
      return (await slots.updateOne({ _id: id, claim: before.claim }, { $set: { jobId, claim } })).modifiedCount === 1;
    try {
      await slots.insertOne({ _id: id, jobId, claim });
      return true;
    } catch (error) {
      if (isDuplicateKey(error)) return false; // another request made it first
      throw error;
    }
  }

  return {
    /** Whether the recorded job `jobId` got one of the user's slots. */
    async claim(userId: string, jobId: ObjectId): Promise<boolean> {
      const ids = Array.from({ length: count }, (_, n) => `${userId}/${n}`);
      const held = new Map((await slots.find({ _id: { $in: ids } }).toArray()).map((slot) => [slot._id, slot]));
      const others = [...held.values()].map((slot) => slot.jobId).filter((id) => !id.equals(jobId));
      const busy = await jobs
        .find({ _id: { $in: others }, status: { $in: [...ACTIVE_STATUSES] } }, { projection: { _id: 1 } })
        .toArray();
      const active = new Set(busy.map((job) => job._id.toHexString()));
      for (const id of ids) {
        const before = held.get(id);
        if (before && active.has(before.jobId.toHexString())) continue;
        if (await take(id, before, jobId)) return true;
      }
      return false;
    },
  };
}
