// One `mp3` message, start to end: tell the job's owner how the conversion ended, once.
// The steps take the notifier's context (built once in notifier.ts) first.
import { ObjectId } from "mongodb";
import type { Counter } from "prom-client";
import type { Job, JobStore } from "../lib/jobs.ts";
import type { Logger } from "../lib/log.ts";
import type { Mp3Message } from "../lib/messages.ts";
import { isMongoUnavailable } from "../lib/mongo.ts";
import type { Delivery } from "../lib/queue.ts";
import type { LinkSigner } from "../lib/signed-links.ts";
import type { NotifierConfig } from "../notifier.ts";
import { composeEmail } from "./email.ts";
import { type Mailer, SendRefused } from "./mailer.ts";

export interface NotifierContext {
  config: NotifierConfig;
  log: Logger;
  jobs: JobStore;
  mail: Mailer;
  /** Signs the "ready" email's download link (LINK_SIGNING_KEY, the gateway's too). */
  links: LinkSigner;
  emails: Counter<"outcome">;
  /** Aborted when the notifier stops: a message waiting out its retry delay goes back at once. */
  stopping: AbortSignal;
}

/** Failures a retry may fix are thrown to the queue, which retries them (counted). */
export async function notify(context: NotifierContext, delivery: Delivery<Mp3Message>): Promise<void> {
  const { log, jobs, mail, emails } = context;
  const jobId = new ObjectId(delivery.body.jobId);
  const job = await jobs.get(jobId);
  const jobLog = log.child({ jobId: delivery.body.jobId, ...(job ? { userId: job.userId } : {}) });
  if (!job) return jobLog.info({ event: "job.gone" }, "job no longer exists; nothing to tell");
  if (job.notifiedAt) return jobLog.info({ event: "email.duplicate" }, "already notified; redelivery ignored");
  if (job.status !== "done" && job.status !== "failed") {
    return jobLog.warn({ event: "job.unfinished", status: job.status }, "job not finished; nothing to tell yet");
  }
  // Only a verified address hears how a job ended (jobs from before verification have no flag: they do).
  if (job.emailVerified === false) {
    await jobs.markNotified(job._id, "not sent: the address was not verified when the job was made");
    emails.inc({ outcome: "skipped_unverified" });
    return jobLog.info({ event: "email.skipped_unverified", status: job.status }, "address not verified; no email");
  }
  try {
    // A retried job's new outcome is a new email: its key names the retry.
    const key = `job-${job._id}-${job.status}${job.retries ? `-retry${job.retries}` : ""}`;
    const emailId = await mail.send(composeEmail(job, context.config, context.links), key);
    await jobs.markNotified(job._id);
    emails.inc({ outcome: mail.sends ? "sent" : "logged" });
    if (mail.sends) jobLog.info({ event: "email.sent", emailId, status: job.status }, "email sent");
  } catch (error) {
    await sendFailed(context, delivery, job, jobLog, error);
  }
}

/** Sorts a failed send: MongoDB away → thrown (waited out); refused → recorded; else retried later. */
async function sendFailed(
  context: NotifierContext,
  delivery: Delivery<Mp3Message>,
  job: Job,
  jobLog: Logger,
  error: unknown,
) {
  const { jobs, emails } = context;
  // Sent but not recorded: retryAfterMongo waits for MongoDB; the retry's send is deduplicated by its key.
  if (isMongoUnavailable(error)) throw error;
  if (error instanceof SendRefused) {
    await jobs.markNotified(job._id, error.message);
    emails.inc({ outcome: "refused" });
    jobLog.error({ event: "email.refused", reason: error.message }, "email refused; recorded on the job");
    return;
  }
  return retryLater(context, delivery, jobLog, error); // on the last attempt: exhausted()
}

/**
 * A send that a retry may fix: after a pause that doubles with each attempt (cut short by
 * the stop), the message goes back to the queue, counted; on the last attempt it is
 * dead-lettered and the consumer's onExhausted runs.
 */
export async function retryLater(
  { config, emails, stopping }: Pick<NotifierContext, "config" | "emails" | "stopping">,
  delivery: Pick<Delivery, "attempt" | "maxAttempts" | "retry">,
  emailLog: Logger,
  error: unknown,
): Promise<void> {
  if (delivery.attempt < delivery.maxAttempts) {
    const delay = config.RETRY_BASE_MS * 2 ** (delivery.attempt - 1);
    emails.inc({ outcome: "retried" });
    emailLog.warn(
      { event: "email.retry", err: error, attempt: delivery.attempt, retryInMs: delay },
      "email not sent; will retry",
    );
    await untilAborted(stopping, delay);
  }
  return delivery.retry(error);
}

/** Resend stayed away through every attempt: the message goes to `mp3.dead`, logged with its job. */
export function exhausted({ config, log, emails }: NotifierContext, body: Mp3Message) {
  emails.inc({ outcome: "dead_lettered" });
  log.error(
    { event: "email.dead_lettered", jobId: body.jobId, attempts: config.MAX_ATTEMPTS },
    "email not sent after all attempts; dead-lettered",
  );
}

/** Waits `ms`, or less if `signal` aborts first. */
function untilAborted(signal: AbortSignal, ms: number): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
