// One `video` message, start to end: the job looked up (gone, or finished by an earlier
// delivery, is acknowledged), marked converting, downloaded if it is a link, converted,
// and the attempt settled. Failures a retry may fix are thrown to the queue, which
// retries them (counted); when its attempts run out, `giveUp` fails the job.
import { ObjectId } from "mongodb";
import type { Job } from "../lib/jobs.ts";
import type { Logger } from "../lib/log.ts";
import type { VideoMessage } from "../lib/messages.ts";
import { isMongoUnavailable } from "../lib/mongo.ts";
import type { Delivery } from "../lib/queue.ts";
import { accountDeleted, removeJobAndFiles } from "./accounts.ts";
import { type ConverterContext, publishOutcome } from "./context.ts";
import { convert, download } from "./convert.ts";
import { BadInput, HandedBack, JobGone } from "./errors.ts";
import { removeSourceVideo, removeStrayFiles } from "./leftovers.ts";
import { watchJob } from "./watch.ts";

const needsDownload = (job: Job) => job.source.kind === "url" && !job.videoFileId;

/** Handles one delivery; `signal` is its message's own, aborted (with HandedBack) when the worker stops. */
export async function handleVideo(
  context: ConverterContext,
  delivery: Delivery<VideoMessage>,
  signal: AbortSignal,
): Promise<void> {
  const { jobs } = context;
  const jobId = new ObjectId(delivery.body.jobId);
  const jobLog = context.log.child({ jobId: delivery.body.jobId });
  const existing = await jobs.get(jobId);
  if (!existing) {
    jobLog.info({ event: "job.gone" }, "job no longer exists; message dropped");
    return delivery.ack();
  }
  if (existing.status === "done" || existing.status === "failed") {
    // A redelivery after the outcome was stored: announce it again only if the user never heard.
    if (!existing.notifiedAt) await publishOutcome(context, jobId, existing.status);
    await removeStrayFiles(context, jobId, { mp3s: existing.audioFileId, covers: existing.coverFileId }, jobLog);
    // The attempt that finished it may have died before the video's removal was done.
    if (existing.status === "done" && !context.config.KEEP_VIDEOS) await removeSourceVideo(context, existing, jobLog);
    jobLog.info(
      { event: "job.redelivered_finished", status: existing.status },
      "redelivered message for a finished job",
    );
    return delivery.ack();
  }
  if (await accountDeleted(context.mongo.db, existing.userId)) {
    // Made with a token of an account deleted since: removed like the account's other jobs.
    await removeJobAndFiles(context, existing);
    jobLog.info({ event: "job.owner_deleted", userId: existing.userId }, "the job's account was deleted; job removed");
    return delivery.ack();
  }
  const job = await jobs.startConverting(jobId, needsDownload(existing) ? "downloading" : "converting");
  if (!job) {
    jobLog.info({ event: "job.gone" }, "job deleted or finished elsewhere meanwhile; message dropped");
    return delivery.ack();
  }
  const userLog = jobLog.child({ userId: job.userId, attempt: delivery.attempt });
  // Deleting the job stops this attempt's work: the message's signal and the job's watch, as one.
  const deleted = new AbortController();
  const stopWatching = watchJob(jobs, jobId, deleted);
  const attempt = AbortSignal.any([signal, deleted.signal]);
  try {
    userLog.info({ event: "job.converting", phase: job.phase }, "converting");
    const ready = needsDownload(job) ? await download(context, job, attempt, userLog) : job;
    if (ready) await convert(context, ready, attempt, userLog);
    return delivery.ack();
  } catch (error) {
    // Whatever failed once the job was deleted (the spool finding its chunks gone, say), it was the deletion.
    return settleFailure(context, deleted.signal.aborted ? deleted.signal.reason : error, delivery, userLog);
  } finally {
    stopWatching();
  }
}

/**
 * A hand-back requeues the message untouched; a deleted job is acknowledged; bad input
 * fails the job; anything else is thrown for a retry.
 */
async function settleFailure(
  context: ConverterContext,
  error: unknown,
  delivery: Delivery<VideoMessage>,
  jobLog: Logger,
): Promise<void> {
  const { jobs, metrics } = context;
  const jobId = new ObjectId(delivery.body.jobId);
  if (error instanceof HandedBack) {
    // Not the job's fault: the attempt does not count on the job's record.
    await jobs.collection.updateOne({ _id: jobId }, { $inc: { attempts: -1 } });
    jobLog.info({ event: "job.handed_back" }, "handed back on shutdown");
    return delivery.requeue();
  }
  if (error instanceof JobGone || (!(error instanceof BadInput) && (await isDeleted(context, jobId, error)))) {
    // Nothing to record or retry: the deletion took the job's files; `convert` removed its MP3 and temp dir.
    metrics.outcomes.inc({ outcome: "gone" });
    jobLog.info({ event: "job.gone" }, "job deleted while in hand; its work stopped");
    return delivery.ack();
  }
  if (error instanceof BadInput) {
    const failed = await jobs.markFailed(jobId, error.message, error.kind);
    if (failed) await publishOutcome(context, jobId, "failed");
    metrics.outcomes.inc({ outcome: "failed" });
    jobLog.info({ event: "job.failed", reason: error.message, kind: error.kind }, "job failed: bad input");
    return delivery.ack();
  }
  jobLog.warn({ event: "job.retrying", err: error }, "conversion hit transient trouble; retrying");
  metrics.outcomes.inc({ outcome: "retried" });
  throw error; // retryAfterMongo waits out a MongoDB outage, then the queue retries it
}

/** True only when the job is known to be gone; a store that is away (or cannot answer) says nothing. */
const isDeleted = ({ jobs }: ConverterContext, jobId: ObjectId, error: unknown) =>
  !isMongoUnavailable(error) &&
  jobs.get(jobId).then(
    (job) => job === null,
    () => false,
  );

/** The queue ran out of attempts for this message: the job fails, the user hears of it. */
export async function giveUp(context: ConverterContext, body: VideoMessage): Promise<void> {
  const { config, jobs, log, metrics } = context;
  const jobId = new ObjectId(body.jobId);
  const reason = `gave up after ${config.MAX_ATTEMPTS} attempts; please try again later`;
  const failed = await jobs.markFailed(jobId, reason, "internal");
  if (failed) await publishOutcome(context, jobId, "failed");
  await removeStrayFiles(context, jobId, {}, log.child({ jobId: body.jobId }));
  metrics.outcomes.inc({ outcome: "gave_up" });
  log.error(
    { event: "job.given_up", jobId: body.jobId, userId: failed?.userId, reason },
    "job given up; message dead-lettered",
  );
}
