// MP3s no job points to: an attempt that stored its MP3 and then died or lost the store
// leaves one behind. They are removed once the job is finished, when its `audioFileId`
// can no longer change; failing to remove them never fails the job.
import type { ObjectId } from "mongodb";
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
