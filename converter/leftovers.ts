// Files a finished job no longer needs. MP3s and covers no job points to: an attempt that
// stored them and then died or lost the store leaves them behind; they are removed once the
// job is finished, when its `audioFileId` and `coverFileId` can no longer change. And a done
// job's source video.
// Failing to remove them never fails the job.
import type { ObjectId } from "mongodb";
import { cleanUp } from "../lib/cleanup.ts";
import type { Job } from "../lib/jobs.ts";
import type { Logger } from "../lib/log.ts";
import type { ConverterContext } from "./context.ts";

/** The buckets an attempt stores into, each with the file the job points to (if any). */
export type Kept = { mp3s?: ObjectId; covers?: ObjectId };
const RESULT_BUCKETS = ["mp3s", "covers"] as const;

/**
 * Removes this job's MP3s and covers other than the ones it points to (`keep`). Run once
 * the job is finished, so a concurrent attempt's files are never mistaken for the job's.
 */
export async function removeStrayFiles(
  { mongo, files }: ConverterContext,
  jobId: ObjectId,
  keep: Kept,
  jobLog: Logger,
): Promise<void> {
  try {
    const removedPerBucket = await Promise.all(
      RESULT_BUCKETS.map(async (bucket) => {
        const kept = keep[bucket];
        const filter = { "metadata.jobId": jobId.toHexString(), ...(kept ? { _id: { $ne: kept } } : {}) };
        const strays = await mongo.db
          .collection(`${bucket}.files`)
          .find(filter, { projection: { _id: 1 } })
          .toArray();
        for (const { _id } of strays) await files.remove(bucket, _id as ObjectId);
        return strays.length;
      }),
    );
    const removed = removedPerBucket[0]! + removedPerBucket[1]!;
    if (removed)
      jobLog.info({ event: "mp3.stray_removed", removed }, "removed MP3s and covers an earlier attempt left behind");
  } catch (error) {
    jobLog.warn({ event: "mp3.stray_check_failed", err: error }, "could not look for files an earlier attempt left");
  }
}

/** Files an attempt stored that the job does not point to yet. */
export type Unclaimed = { mp3?: ObjectId; cover?: ObjectId };

/** After a failure past storing: remove what the job does not point to (markDone may have landed without its answer). */
export async function dropUnclaimed({ jobs, files }: ConverterContext, jobId: ObjectId, unclaimed: Unclaimed) {
  if (!unclaimed.mp3 && !unclaimed.cover) return;
  const job = await jobs.get(jobId);
  if (unclaimed.mp3 && !job?.audioFileId?.equals(unclaimed.mp3)) await files.remove("mp3s", unclaimed.mp3);
  if (unclaimed.cover && !job?.coverFileId?.equals(unclaimed.cover)) await files.remove("covers", unclaimed.cover);
}

/**
 * A done job's source video goes (unless KEEP_VIDEOS). GridFS removes the file record,
 * then its chunks, in two commands: a MongoDB outage between them would leave chunks
 * without a file, so the removal is retried in the background until it has happened
 * (lib/cleanup.ts), and a redelivered message of a done job removes it again.
 */
export async function removeSourceVideo({ files }: ConverterContext, job: Job, jobLog: Logger): Promise<void> {
  const videoFileId = job.videoFileId;
  if (!videoFileId) return;
  await cleanUp(`remove the source video ${videoFileId}`, () => files.remove("videos", videoFileId), { log: jobLog });
}
