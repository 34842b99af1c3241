// The `jobs` collection: the one record of a conversion, shared by the gateway,
// the converter and the notifier. Status only moves forward
// (queued → converting → done | failed): every transition is a conditional update
// on the current status, so a late or repeated message cannot move a job backwards.
// The one move back is a retry (failed → queued), asked for by the job's owner.
// A finished job expires `retentionHours` after it finished: `expiresAt` is set then,
// and a sweeper (converter/sweeper.ts) removes the job and its files after it.
import { type Collection, type Db, ObjectId } from "mongodb";
import type { BucketName } from "./files.ts";
import type { AudioTrack, ConversionOptions } from "./options.ts";

export const JOB_STATUSES = ["queued", "converting", "done", "failed"] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
/** What a converting job is doing: a link job downloads its video first. */
export const JOB_PHASES = ["downloading", "converting"] as const;
export type JobPhase = (typeof JOB_PHASES)[number];
export const FINISHED_STATUSES = ["done", "failed"] as const;
/**
 * Why a job failed, as the converter sorted it where the failure arose: the failure email's
 * advice follows it. `link`: the link could not be downloaded as a video (unreachable, 404,
 * a web page); `damaged`: the file cannot be read; `no_audio`; `too_long` (MAX_AUDIO_SECONDS);
 * `track_missing`: the chosen `track` is not in the file; `trim`: `start` is past the audio;
 * `quota`: the owner's storage is full; `internal`: our side gave up after its attempts;
 * `login`: a video page's site shows the video only to signed-in users.
 */
export const JOB_ERROR_KINDS = [
  "link",
  "damaged",
  "no_audio",
  "too_long",
  "track_missing",
  "trim",
  "quota",
  "internal",
  "login",
] as const;
export type JobErrorKind = (typeof JOB_ERROR_KINDS)[number];
/** How long a finished job, its video and its MP3 are kept (RETENTION_HOURS' default). */
export const DEFAULT_RETENTION_HOURS = 168;

export interface JobSource {
  kind: "upload" | "url";
  filename: string;
  url?: string;
  bytes: number;
  /** What the bytes were sniffed as (lib/upload.ts), a video or an audio type; not what the client declared. */
  contentType: string;
  /** The source's audio tracks, written by the converter once it has probed the source. */
  audioTracks?: AudioTrack[];
}

export interface JobAudio {
  bytes: number;
  durationSec: number;
}

export interface Job {
  _id: ObjectId;
  userId: string;
  email: string;
  /** Whether `email` was verified when the job was made (the token's `email_verified`); absent on older jobs. */
  emailVerified?: boolean;
  source: JobSource;
  videoFileId?: ObjectId;
  audioFileId?: ObjectId;
  audio?: JobAudio;
  /** The MP3's front cover (GridFS `covers`), written by the converter when it made one. */
  coverFileId?: ObjectId;
  /**
   * The options as applied: the gateway stores what the user chose with GATEWAY_DEFAULTS
   * filled in; the converter replaces them with the full set it applies when it starts.
   */
  options?: ConversionOptions;
  /** The options exactly as the user chose them (what the email names); only the gateway writes them. */
  requestedOptions?: ConversionOptions;
  status: JobStatus;
  phase?: JobPhase;
  progress: number;
  error?: string;
  /** What kind of failure `error` is (absent on older jobs and unsorted failures). */
  errorKind?: JobErrorKind;
  attempts: number;
  createdAt: Date;
  updatedAt: Date;
  /** When it joined the queue: made, or retried. Its place in line counts the queued jobs before it. */
  queuedAt?: Date;
  startedAt?: Date;
  finishedAt?: Date;
  notifiedAt?: Date;
  notifyError?: string;
  /** When the sweeper removes the finished job and its files. */
  expiresAt?: Date;
  /** Set by the sweeper that claimed the expired job; a claim older than its lease is taken over. */
  sweepingAt?: Date;
  /** Times its owner ran the failed job again. */
  retries?: number;
  /** Signed audio links name it; revoking them (DELETE /jobs/:id/share) bumps it. Absent = 0. */
  shareVersion?: number;
}

export type NewJob = Pick<Job, "userId" | "email" | "source"> &
  Partial<Pick<Job, "_id" | "emailVerified" | "videoFileId" | "options" | "requestedOptions">>;

/** Every GridFS file a job holds, bucket by bucket: what deleting or sweeping the job removes. */
export function jobFiles(job: Job): { bucket: BucketName; id: ObjectId }[] {
  const files: { bucket: BucketName; id: ObjectId | undefined }[] = [
    { bucket: "videos", id: job.videoFileId },
    { bucket: "mp3s", id: job.audioFileId },
    { bucket: "covers", id: job.coverFileId },
  ];
  return files.filter((file): file is { bucket: BucketName; id: ObjectId } => file.id !== undefined);
}

/** Whether the job has expired (its files are about to go, or going): past `expiresAt`, or being swept. */
export const hasExpired = (job: Pick<Job, "expiresAt" | "sweepingAt">, now = new Date()): boolean =>
  job.sweepingAt !== undefined || (job.expiresAt !== undefined && job.expiresAt <= now);

/** Parses a job id from a URL or message; anything that is not an ObjectId is "no such job". */
export function parseJobId(id: string): ObjectId | null {
  return /^[0-9a-f]{24}$/i.test(id) ? new ObjectId(id) : null;
}

export function jobStore(db: Db, { retentionHours = DEFAULT_RETENTION_HOURS }: { retentionHours?: number } = {}) {
  const jobs: Collection<Job> = db.collection<Job>("jobs");
  /** The fields every finish sets: when, and so until when the job is kept. */
  const finishing = () => {
    const now = new Date();
    return { updatedAt: now, finishedAt: now, expiresAt: new Date(now.getTime() + retentionHours * 3_600_000) };
  };

  return {
    collection: jobs,

    /** Indexes the queries below rely on; idempotent, run at start by every user. */
    async ensureIndexes() {
      await jobs.createIndex({ userId: 1, _id: -1 }, { name: "jobs_by_user_newest" });
      await jobs.createIndex({ audioFileId: 1 }, { name: "jobs_by_audio_file", sparse: true });
      await jobs.createIndex({ expiresAt: 1 }, { name: "jobs_by_expiry", sparse: true });
      // Only queued jobs, in the order they joined the queue: a job's place in line is a count of a short range.
      await jobs.createIndex(
        { queuedAt: 1, _id: 1 },
        { name: "jobs_queued_in_order", partialFilterExpression: { status: "queued" } },
      );
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
        queuedAt: now,
      };
      await jobs.insertOne(record);
      return record;
    },

    get: (id: ObjectId) => jobs.findOne({ _id: id }),

    /** A job only its owner may see: someone else's is indistinguishable from none. */
    getOwned: (id: ObjectId, userId: string) => jobs.findOne({ _id: id, userId }),

    findByAudioFile: (audioFileId: ObjectId, userId: string) => jobs.findOne({ audioFileId, userId }),

    /** A queued job's place in line, 1 for the next to be taken: the queued jobs of every user that joined before it, plus one. */
    async queuePosition(job: Pick<Job, "_id" | "queuedAt" | "createdAt">): Promise<number> {
      const queuedAt = job.queuedAt ?? job.createdAt;
      const before = await jobs.countDocuments({
        status: "queued",
        $or: [{ queuedAt: { $lt: queuedAt } }, { queuedAt, _id: { $lt: job._id } }],
      });
      return before + 1;
    },

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

    /**
     * A link job's video is downloaded: attach it once and move on to converting, progress at least
     * `progress`; a `filename` the download named (its Content-Disposition) becomes the source's name.
     */
    attachVideo: (
      id: ObjectId,
      videoFileId: ObjectId,
      video: { bytes: number; contentType: string; filename?: string },
      progress: number,
    ) =>
      jobs.findOneAndUpdate(
        { _id: id, status: "converting", videoFileId: { $exists: false } },
        {
          $set: {
            videoFileId,
            "source.bytes": video.bytes,
            "source.contentType": video.contentType,
            ...(video.filename ? { "source.filename": video.filename } : {}),
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

    /**
     * What the converter found on probing the source (its audio tracks) and, unless the job
     * cannot be done, the options it applies, every default filled in; only while converting.
     */
    recordProbe: (id: ObjectId, audioTracks: AudioTrack[], applied?: ConversionOptions) =>
      jobs.updateOne(
        { _id: id, status: "converting" },
        {
          $set: { "source.audioTracks": audioTracks, ...(applied ? { options: applied } : {}), updatedAt: new Date() },
        },
      ),

    markDone: (id: ObjectId, audioFileId: ObjectId, audio: JobAudio, coverFileId?: ObjectId) =>
      jobs.findOneAndUpdate(
        { _id: id, status: "converting" },
        {
          $set: {
            status: "done",
            progress: 100,
            audioFileId,
            audio,
            ...(coverFileId ? { coverFileId } : {}),
            ...finishing(),
          },
        },
        { returnDocument: "after" },
      ),

    markFailed: (id: ObjectId, reason: string, kind?: JobErrorKind) =>
      jobs.findOneAndUpdate(
        { _id: id, status: { $in: ["queued", "converting"] } },
        { $set: { status: "failed", error: reason, ...(kind ? { errorKind: kind } : {}), ...finishing() } },
        { returnDocument: "after" },
      ),

    /**
     * failed → queued again, as new: only while no sweeper has claimed it and its video is the one
     * it had. The new outcome is emailed again (`notifiedAt` goes); null if the job changed meanwhile.
     */
    retry: (job: Job) =>
      jobs.findOneAndUpdate(
        {
          _id: job._id,
          status: "failed",
          sweepingAt: { $exists: false },
          videoFileId: job.videoFileId ?? { $exists: false },
        },
        {
          $set: { status: "queued", progress: 0, attempts: 0, updatedAt: new Date(), queuedAt: new Date() },
          $unset: RETRY_CLEARS,
          $inc: { retries: 1 },
        },
        { returnDocument: "after" },
      ),

    /** The retry could not be queued: the job is `before` again, unless a converter took it up meanwhile. */
    undoRetry: (before: Job, retried: Job) =>
      jobs.updateOne(
        { _id: before._id, status: "queued", retries: retried.retries, startedAt: { $exists: false } },
        { $set: { ...pick(before, RETRY_RESTORES), updatedAt: new Date() } },
      ),

    /**
     * Claims the next expired job no live sweeper holds (none, or a claim older than `leaseMs`: its
     * sweeper died) by setting `sweepingAt`; answers the job as it was before the claim, or null.
     */
    claimExpired: (now: Date, leaseMs: number) =>
      jobs.findOneAndUpdate(
        {
          expiresAt: { $lte: now },
          status: { $in: [...FINISHED_STATUSES] },
          $or: [{ sweepingAt: { $exists: false } }, { sweepingAt: { $lte: new Date(now.getTime() - leaseMs) } }],
        },
        { $set: { sweepingAt: now } },
        { sort: { expiresAt: 1 }, returnDocument: "before" },
      ),

    /** Jobs finished before retention existed get their expiry from when they finished; answers how many. */
    async dateUndatedFinished(): Promise<number> {
      let dated = 0;
      const undated = jobs.find(
        { status: { $in: [...FINISHED_STATUSES] }, finishedAt: { $exists: true }, expiresAt: { $exists: false } },
        { projection: { finishedAt: 1 } },
      );
      for await (const { _id, finishedAt } of undated) {
        const expiresAt = new Date(finishedAt!.getTime() + retentionHours * 3_600_000);
        // Conditional on the same finish: a job retried meanwhile has none.
        const result = await jobs.updateOne(
          { _id, finishedAt, expiresAt: { $exists: false } },
          { $set: { expiresAt } },
        );
        dated += result.modifiedCount;
      }
      return dated;
    },

    /** The claimed job's files are gone: the job goes too (false if a sweeper that took over removed it first). */
    async removeSwept(id: ObjectId): Promise<boolean> {
      return (await jobs.deleteOne({ _id: id, sweepingAt: { $exists: true } })).deletedCount === 1;
    },

    /** Every signed link to the owner's job made so far stops working; answers the job after, or null if not theirs. */
    revokeLinks: (id: ObjectId, userId: string) =>
      jobs.findOneAndUpdate({ _id: id, userId }, { $inc: { shareVersion: 1 } }, { returnDocument: "after" }),

    /** Records the email as sent; false if it already was (a redelivered message). */
    async markNotified(id: ObjectId, error?: string): Promise<boolean> {
      const set = error ? { notifiedAt: new Date(), notifyError: error } : { notifiedAt: new Date() };
      const result = await jobs.updateOne({ _id: id, notifiedAt: { $exists: false } }, { $set: set });
      return result.modifiedCount === 1;
    },
  };
}

export type JobStore = ReturnType<typeof jobStore>;

/** What a retry clears, and what undoing it puts back. */
const RETRY_CLEARS = {
  error: "",
  errorKind: "",
  phase: "",
  startedAt: "",
  finishedAt: "",
  expiresAt: "",
  notifiedAt: "",
  notifyError: "",
} as const;
const RETRY_RESTORES = ["status", "progress", "attempts", "queuedAt", ...Object.keys(RETRY_CLEARS)] as (keyof Job)[];

const pick = (job: Job, keys: (keyof Job)[]) =>
  Object.fromEntries(keys.filter((key) => job[key] !== undefined).map((key) => [key, job[key]]));
