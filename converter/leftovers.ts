// Files a finished job no longer needs. MP3s no job points to: an attempt that stored its
// MP3 and then died or lost the store leaves one behind; they are removed once the job is
// finished, when its `audioFileId` can no longer change. And a done job's source video.
// Failing to remove them never fails the job.
import type { ObjectId } from "mongodb";
import { cleanUp } from "../lib/cleanup.ts";
import type { Job } from "../lib/jobs.ts";
import type { Logger } from "../lib/log.ts";
import type { ConverterContext } from "./context.ts";

/**
 * Removes the MP3s of this job other than `keep` (the one it points to). Run once the job
 * is finished, so a concurrent attempt's file is never mistaken for the job's.
 */
export async function removeStrayMp3s(
  { mongo, files }: ConverterContext,
  jobId: ObjectId,
  keep: ObjectId | undefined,
  jobLog: Logger,
): Promise<void> {
  try {
    const strays = await mongo.db
      .collection("mp3s.files")
      .find(
        { "metadata.jobId": jobId.toHexString(), ...(keep ? { _id: { $ne: keep } } : {}) },
        { projection: { _id: 1 } },
      )
      .toArray();
    for (const { _id } of strays) await files.remove("mp3s", _id as ObjectId);
    if (strays.length)
      jobLog.info(
        { event: "mp3.stray_removed", removed: strays.length },
        "removed MP3s an earlier attempt left behind",
      );
  } catch (error) {
    jobLog.warn({ event: "mp3.stray_check_failed", err: error }, "could not look for MP3s an earlier attempt left");
  }
}

/** After a failure past storing the MP3: remove it unless the job points to it (markDone may have landed without its answer). */
export async function dropUnclaimedMp3({ jobs, files }: ConverterContext, jobId: ObjectId, fileId: ObjectId) {
  const job = await jobs.get(jobId);
  if (job?.audioFileId?.equals(fileId)) return;
  await files.remove("mp3s", fileId);
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
