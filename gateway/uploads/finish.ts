// A received upload becomes a job, as POST /jobs makes one (gateway/intake.ts): the
// user's stored bytes within the quota, a job record, one of the user's MAX_ACTIVE_JOBS
// slots, a `video` message. The job's id was chosen when the last byte was stored, so
// finishing again (a PATCH at the end of a received upload, after a 429 or 503, or after
// the answer was lost) makes no second job. What refuses the job decides what is kept:
// past the storage quota (413) the upload goes; no slot free (429) or the broker away (503)
// and the file is kept, so the same empty PATCH later makes the job without uploading again.
import type { Counter } from "prom-client";
import { cleanUp } from "../../lib/cleanup.ts";
import type { FileStore } from "../../lib/files.ts";
import type { Job, JobStore } from "../../lib/jobs.ts";
import type { Logger } from "../../lib/log.ts";
import { isDuplicateKey } from "../../lib/mongo.ts";
import { HttpProblem, Unavailable } from "../../lib/problem.ts";
import { QUEUES, type Queue } from "../../lib/queue.ts";
import type { Caller } from "../bearer.ts";
import { withGatewayDefaults } from "../options.ts";
import type { Quotas } from "../quotas.ts";
import type { UploadRecord, UploadStore } from "./store.ts";

export interface FinishDeps {
  files: FileStore;
  jobs: JobStore;
  uploads: UploadStore;
  queue: Pick<Queue, "publish">;
  quotas: Quotas;
  log: Logger;
  uploadedBytes: Counter;
  jobsCreated: Counter;
}

/** Makes and queues the received upload's job (whose lease `writer` holds, and gives back); answers the job's id. */
export async function finishUpload(
  deps: FinishDeps,
  upload: UploadRecord,
  writer: UploadRecord["_id"],
  user: Caller,
): Promise<string> {
  const { uploads, log } = deps;
  let queued = false;
  try {
    if (!upload.queuedAt) await queueJob(deps, upload, user);
    queued = true;
  } catch (error) {
    if (error instanceof HttpProblem && error.status === 413) {
      await removeUpload(deps, upload);
      log.info({ event: "upload.refused", uploadId: upload._id, userId: user.id, reason: "storedBytes" }, "refused");
    }
    throw error;
  } finally {
    await cleanUp(`give back the lease of upload ${upload._id}`, () => uploads.finished(upload._id, writer, queued), {
      log,
    });
  }
  return upload.jobId!.toHexString();
}

/** The steps of POST /jobs after its video is stored; a job made before (a lost answer) is taken as it is. */
async function queueJob(deps: FinishDeps, upload: UploadRecord, user: Caller): Promise<void> {
  const { jobs, quotas, log } = deps;
  const jobId = upload.jobId!;
  const earlier = await jobs.get(jobId);
  if (earlier && earlier.status !== "queued") return; // already taken up by a converter
  if (!earlier) await quotas.confirmStored(user.id); // an earlier job passed it, its file counted since
  const job = earlier ?? (await createJob(deps, upload, user));
  const removeJob = () => cleanUp(`remove job ${jobId}`, () => jobs.remove(jobId), { log });
  await quotas.claimSlot(user.id, jobId).catch(async (error) => {
    await removeJob();
    throw error;
  });
  try {
    await deps.queue.publish(QUEUES.video, { jobId: jobId.toHexString() }, { messageId: jobId.toHexString() });
  } catch (error) {
    await removeJob();
    log.error({ event: "job.enqueue_failed", err: error, jobId, userId: user.id }, "could not queue the upload's job");
    throw new Unavailable("the job could not be queued right now; the upload is kept: send the last PATCH again");
  }
  deps.jobsCreated.inc();
  deps.uploadedBytes.inc(upload.length);
  log.info(
    { event: "job.queued", jobId, userId: user.id, bytes: job.source.bytes, type: job.source.contentType, way: "tus" },
    "job queued",
  );
}

async function createJob(deps: FinishDeps, upload: UploadRecord, user: Caller): Promise<Job> {
  try {
    return await deps.jobs.create({
      _id: upload.jobId!,
      userId: user.id,
      email: user.email,
      emailVerified: user.emailVerified,
      videoFileId: upload._id,
      source: { kind: "upload", filename: upload.filename, bytes: upload.length, contentType: upload.sniffed! },
      options: withGatewayDefaults(upload.options),
      requestedOptions: upload.options,
    });
  } catch (error) {
    const made = isDuplicateKey(error) && (await deps.jobs.get(upload.jobId!)); // a finish racing this one made it
    if (made) return made;
    throw error;
  }
}

/** The upload goes: its record, then its bytes (chunks and, once received, the file). */
export async function removeUpload(deps: Pick<FinishDeps, "files" | "uploads" | "log">, upload: UploadRecord) {
  await cleanUp(
    `remove upload ${upload._id}`,
    async () => {
      await deps.files.remove("videos", upload._id);
      await deps.uploads.remove(upload._id);
    },
    { log: deps.log },
  );
}
