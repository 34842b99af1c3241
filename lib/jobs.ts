// The `jobs` collection: the one record of a conversion, shared by the gateway,
// the converter and the notifier. Status only moves forward
// (queued → converting → done | failed): every transition is a conditional update
// on the current status, so a late or repeated message cannot move a job backwards.
import { type Collection, type Db, ObjectId } from "mongodb";

export const JOB_STATUSES = ["queued", "converting", "done", "failed"] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
/** What a converting job is doing: a link job downloads its video first. */
export const JOB_PHASES = ["downloading", "converting"] as const;
export type JobPhase = (typeof JOB_PHASES)[number];

export interface JobSource {
  kind: "upload" | "url";
  filename: string;
  url?: string;
  bytes: number;
  contentType: string;
}

export interface JobAudio {
  bytes: number;
  durationSec: number;
}

export interface Job {
  _id: ObjectId;
  userId: string;
  email: string;
  source: JobSource;
  videoFileId?: ObjectId;
  audioFileId?: ObjectId;
  audio?: JobAudio;
  status: JobStatus;
  phase?: JobPhase;
  progress: number;
  error?: string;
  attempts: number;
  createdAt: Date;
  updatedAt: Date;
  startedAt?: Date;
  finishedAt?: Date;
  notifiedAt?: Date;
  notifyError?: string;
}

export type NewJob = Pick<Job, "userId" | "email" | "source"> & Partial<Pick<Job, "_id" | "videoFileId">>;

/** Parses a job id from a URL or message; anything that is not an ObjectId is "no such job". */
export function parseJobId(id: string): ObjectId | null {
  return /^[0-9a-f]{24}$/i.test(id) ? new ObjectId(id) : null;
}

export function jobStore(db: Db) {
  const jobs: Collection<Job> = db.collection<Job>("jobs");

  return {
    collection: jobs,

    /** Indexes the queries below rely on; idempotent, run at start by every user. */
    async ensureIndexes() {
      await jobs.createIndex({ userId: 1, _id: -1 }, { name: "jobs_by_user_newest" });
      await jobs.createIndex({ audioFileId: 1 }, { name: "jobs_by_audio_file", sparse: true });
    },

    async create(job: NewJob): Promise<Job> {
      const now = new Date();
      const record: Job = {
        _id: new ObjectId(),
        ...job,
        status: "queued",
        progress: 0,
        attempts: 0,
        createdAt: now,
        updatedAt: now,
      };
      await jobs.insertOne(record);
      return record;
    },

    get: (id: ObjectId) => jobs.findOne({ _id: id }),

    /** A job only its owner may see: someone else's is indistinguishable from none. */
    getOwned: (id: ObjectId, userId: string) => jobs.findOne({ _id: id, userId }),

    findByAudioFile: (audioFileId: ObjectId, userId: string) => jobs.findOne({ audioFileId, userId }),

    /** The user's jobs, newest first; `before` is the last id of the previous page. */
    list(userId: string, { limit, before }: { limit: number; before?: ObjectId }) {
      const filter = before ? { userId, _id: { $lt: before } } : { userId };
      return jobs.find(filter).sort({ _id: -1 }).limit(limit).toArray();
    },

    async remove(id: ObjectId): Promise<boolean> {
      return (await jobs.deleteOne({ _id: id })).deletedCount === 1;
    },

    /** queued (or converting again, after a crash) → converting; counts the attempt. */
    startConverting: (id: ObjectId, phase: JobPhase = "converting") =>
      jobs.findOneAndUpdate(
        { _id: id, status: { $in: ["queued", "converting"] } },
        { $set: { status: "converting", phase, updatedAt: new Date(), startedAt: new Date() }, $inc: { attempts: 1 } },
        { returnDocument: "after" },
      ),

    /** A link job's video is downloaded: attach it once and move on to converting, progress at least `progress`. */
    attachVideo: (
      id: ObjectId,
      videoFileId: ObjectId,
      video: { bytes: number; contentType: string },
      progress: number,
    ) =>
      jobs.findOneAndUpdate(
        { _id: id, status: "converting", videoFileId: { $exists: false } },
        {
          $set: {
            videoFileId,
            "source.bytes": video.bytes,
            "source.contentType": video.contentType,
            phase: "converting",
            updatedAt: new Date(),
          },
          $max: { progress },
        },
        { returnDocument: "after" },
      ),

    /** Progress only while converting, and never backwards. */
    async setProgress(id: ObjectId, progress: number): Promise<void> {
      const value = Math.max(0, Math.min(100, Math.round(progress)));
      await jobs.updateOne(
        { _id: id, status: "converting", progress: { $lt: value } },
        { $set: { progress: value, updatedAt: new Date() } },
      );
    },

    markDone: (id: ObjectId, audioFileId: ObjectId, audio: JobAudio) =>
      jobs.findOneAndUpdate(
        { _id: id, status: "converting" },
        { $set: { status: "done", progress: 100, audioFileId, audio, updatedAt: new Date(), finishedAt: new Date() } },
        { returnDocument: "after" },
      ),

    markFailed: (id: ObjectId, reason: string) =>
      jobs.findOneAndUpdate(
        { _id: id, status: { $in: ["queued", "converting"] } },
        { $set: { status: "failed", error: reason, updatedAt: new Date(), finishedAt: new Date() } },
        { returnDocument: "after" },
      ),

    /** Records the email as sent; false if it already was (a redelivered message). */
    async markNotified(id: ObjectId, error?: string): Promise<boolean> {
      const set = error ? { notifiedAt: new Date(), notifyError: error } : { notifiedAt: new Date() };
      const result = await jobs.updateOne({ _id: id, notifiedAt: { $exists: false } }, { $set: set });
      return result.modifiedCount === 1;
    },
  };
}

export type JobStore = ReturnType<typeof jobStore>;
