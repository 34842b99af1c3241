// What the job routes do apart from HTTP: find, page through, delete and retry a caller's
// own jobs, tell a queued job's place in line, and answer a finished job's MP3 (with its
// length, Range requests and HEAD included: gateway/downloads.ts) and its cover.
import { create as contentDisposition } from "content-disposition";
import { cleanUp } from "../lib/cleanup.ts";
import { mp3Filename } from "../lib/filenames.ts";
import type { FileStore } from "../lib/files.ts";
import { hasExpired, type Job, type JobStore, jobFiles, parseJobId } from "../lib/jobs.ts";
import type { Logger } from "../lib/log.ts";
import { Conflict, Gone, NotFound, Unavailable, Unprocessable } from "../lib/problem.ts";
import { QUEUES, type Queue } from "../lib/queue.ts";
import type { Caller } from "./bearer.ts";
import { sizedDownloads } from "./downloads.ts";
import type { JobPage } from "./models.ts";
import type { Quotas } from "./quotas.ts";
import { jobView, type PlacedJob } from "./view.ts";

export interface JobServiceDeps {
  jobs: JobStore;
  files: FileStore;
  queue: Pick<Queue, "publish">;
  quotas: Pick<Quotas, "claimSlot">;
  log: Logger;
}

export function jobService({ jobs, files, queue, quotas, log }: JobServiceDeps) {
  const downloads = sizedDownloads(files, { log });

  /** The caller's job by the id in a URL; someone else's job, or no such id, is 404. */
  async function owned(id: string, user: Caller): Promise<Job> {
    const jobId = parseJobId(id);
    const job = jobId && (await jobs.getOwned(jobId, user.id));
    if (!job) throw new NotFound("no such job");
    return job;
  }

  /** One page of the caller's jobs, newest first; `cursor` is the last id of the page before. */
  async function page(user: Caller, { limit, cursor }: { limit: number; cursor?: string }): Promise<JobPage> {
    const before = cursor ? parseJobId(cursor) : undefined;
    if (before === null) throw new Unprocessable("cursor is not a job id");
    const found = await jobs.list(user.id, { limit: limit + 1, ...(before ? { before } : {}) });
    // At most MAX_ACTIVE_JOBS of them are queued: a count each.
    const items = await Promise.all(found.slice(0, limit).map(async (job) => jobView(await placed(job))));
    return found.length > limit ? { items, nextCursor: items.at(-1)!.id } : { items };
  }

  /** The job with its place in line while it is queued (a count over the index of queued jobs). */
  async function placed(job: Job): Promise<PlacedJob> {
    return job.status === "queued" ? { ...job, queuePosition: await jobs.queuePosition(job) } : job;
  }

  /** The job as the API shows it, its place in line included. */
  const view = async (job: Job) => jobView(await placed(job));

  /** Deletes the caller's job, then its files (video, MP3, cover). */
  async function remove(id: string, user: Caller): Promise<void> {
    const job = await owned(id, user);
    await jobs.remove(job._id);
    await removeFilesOf(job);
    log.info({ event: "job.deleted", jobId: job._id, userId: user.id }, "job deleted");
  }

  /** The job is gone: its files must follow even if MongoDB falters now (a failed removal is retried in the background). */
  async function removeFilesOf(job: Job): Promise<void> {
    await Promise.all(
      jobFiles(job).map(({ bucket, id }) =>
        cleanUp(`remove ${bucket} file ${id}`, () => files.remove(bucket, id), { log }),
      ),
    );
  }

  /**
   * Runs the caller's failed job again (failed → queued, as new) with the video and options it
   * had, and queues it; if the broker does not confirm, the job is failed again as it was: 503.
   */
  async function retry(id: string, user: Caller): Promise<Job> {
    const job = await owned(id, user);
    await mustBeRetryable(job);
    const queued = await jobs.retry(job);
    if (!queued) {
      await mustBeRetryable(await owned(id, user)); // says what changed meanwhile
      throw new Conflict("the job changed while it was being retried; look at it again");
    }
    // Queued again, it counts against MAX_ACTIVE_JOBS like a new job: a slot, or 429 and still failed.
    await quotas.claimSlot(user.id, queued._id).catch(async (error) => {
      await cleanUp(`undo the retry of job ${job._id}`, () => jobs.undoRetry(job, queued), { log });
      throw error;
    });
    try {
      const jobId = queued._id.toHexString();
      await queue.publish(QUEUES.video, { jobId }, { messageId: jobId });
    } catch (error) {
      await cleanUp(`undo the retry of job ${job._id}`, () => jobs.undoRetry(job, queued), { log });
      log.error(
        { event: "job.enqueue_failed", err: error, jobId: job._id, userId: user.id },
        "could not queue the retry",
      );
      throw new Unavailable("the job could not be queued right now; it is still failed, please try again");
    }
    log.info(
      { event: "job.retried", jobId: job._id, userId: user.id, retries: queued.retries },
      "failed job queued again",
    );
    return queued;
  }

  /** Only a failed job whose video is still kept can run again. */
  async function mustBeRetryable(job: Job): Promise<void> {
    if (job.status !== "failed") throw new Conflict(`only a failed job can be retried; this one is ${job.status}`);
    if (hasExpired(job)) throw new Gone("the job has expired and its video is no longer kept; upload the video again");
    const videoKept = job.videoFileId ? await files.stat("videos", job.videoFileId) : job.source.kind === "url";
    if (!videoKept) throw new Gone("the job's video is no longer kept; upload the video again");
  }

  /** The job's MP3 as an attachment named after the video; 409 until the job is done. */
  async function audio(job: Job, request: Request): Promise<Response> {
    if (job.status !== "done" || !job.audioFileId) {
      throw new Conflict(
        job.status === "failed"
          ? `the job failed: ${job.error ?? "no MP3"}`
          : `the MP3 is not ready yet (status: ${job.status})`,
      );
    }
    if (job.sweepingAt) throw new Gone("the job has expired; its MP3 is no longer kept");
    return downloads.respond("mp3s", job.audioFileId, request, {
      "content-type": "audio/mpeg",
      "content-disposition": contentDisposition(mp3Filename(job.source.filename)),
      "cache-control": "private, max-age=3600",
    });
  }

  /** The MP3's front cover (JPEG) the converter made; 404 when it made none (or not yet). */
  async function cover(job: Job, request: Request): Promise<Response> {
    if (!job.coverFileId) throw new NotFound("the job has no cover image");
    return files.respond("covers", job.coverFileId, request, {
      "content-type": "image/jpeg",
      "cache-control": "private, max-age=3600",
      "x-content-type-options": "nosniff",
    });
  }

  /** The caller's MP3 by its file id (the reference system's `/download?fid=`). */
  async function audioByFileId(fid: string, user: Caller, request: Request): Promise<Response> {
    const fileId = parseJobId(fid);
    const job = fileId && (await jobs.findByAudioFile(fileId, user.id));
    if (!job) throw new NotFound("no such MP3");
    return audio(job, request);
  }

  /** The caller's job as it is now, with its place in line; null once it is deleted. */
  const current = async (job: Job) => {
    const now = await jobs.getOwned(job._id, job.userId);
    return now && placed(now);
  };

  return { owned, placed, view, page, remove, retry, audio, cover, audioByFileId, current };
}

export type JobService = ReturnType<typeof jobService>;
