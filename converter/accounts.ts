// The `account` message: auth deleted an account (auth/deletion.ts), and its MongoDB data
// goes too: every job with its video, MP3 and cover, any file still carrying the user as
// owner (a partial upload, an MP3 whose job went first), unfinished resumable uploads, the user's quota slots, webhooks
// and remembered Idempotency-Keys (API keys live in auth's MySQL and go with the account
// there; any `api_keys` document of the user here goes too). Each job goes as the retention sweeper removes one: files first, then the
// job, so the jobs left are the to-do list. Everything here is idempotent: a converter
// killed halfway leaves the message unacked, and whichever converter takes it again
// removes what is left; removing what is gone already is no error.
import type { Db, ObjectId } from "mongodb";
import { BUCKETS } from "../lib/files.ts";
import { type Job, jobFiles } from "../lib/jobs.ts";
import type { AccountMessage } from "../lib/messages.ts";
import { retryAfterMongo } from "../lib/mongo.ts";
import { type Delivery, QUEUES } from "../lib/queue.ts";
import { MAX_TOKEN_SECONDS } from "../lib/tokens.ts";
import type { ConverterContext } from "./context.ts";

/** Collections of a user's own documents (field `userId`), removed whole; absent ones are fine. */
export const USER_COLLECTIONS = ["api_keys", "webhooks", "webhook_deliveries", "idempotency_keys"] as const;
/**
 * Accounts deleted within the longest life a token may have. The gateway checks tokens without
 * asking auth, so a deleted account's token still makes jobs until it expires: the converter
 * removes such a job instead of converting it (converter/handle.ts). Entries expire (TTL index).
 */
const DELETED_ACCOUNTS = "deleted_accounts";

/** Whether the user's account was deleted (within the longest token life). */
export async function accountDeleted(db: Db, userId: string): Promise<boolean> {
  return (await db.collection<{ _id: string }>(DELETED_ACCOUNTS).countDocuments({ _id: userId }, { limit: 1 })) > 0;
}

/** A job and its files, removed as the retention sweeper removes one: files first. */
export async function removeJobAndFiles({ jobs, files }: ConverterContext, job: Job): Promise<boolean> {
  await Promise.all(jobFiles(job).map(({ bucket, id }) => files.remove(bucket, id)));
  return jobs.remove(job._id);
}

/** Jobs read per round: a user may have many. */
const BATCH = 100;

/** Removes the account's data; a stop in between hands the message back (what is removed stays removed). */
export async function removeAccount(
  context: ConverterContext,
  delivery: Delivery<AccountMessage>,
  signal: AbortSignal,
): Promise<void> {
  const { jobs, files, mongo, log } = context;
  const { userId } = delivery.body;
  const accountLog = log.child({ userId });
  accountLog.info({ event: "account.removing", attempt: delivery.attempt }, "removing a deleted account's data");
  // First, so a job a still-valid token makes from now on is removed, not converted.
  const until = new Date(Date.now() + MAX_TOKEN_SECONDS * 1000);
  await mongo.db
    .collection<{ _id: string }>(DELETED_ACCOUNTS)
    .updateOne({ _id: userId }, { $setOnInsert: { deletedAt: new Date(), until } }, { upsert: true });
  let removedJobs = 0;
  for (;;) {
    const batch = await jobs.collection.find({ userId }).limit(BATCH).toArray();
    if (batch.length === 0) break;
    for (const job of batch) {
      if (signal.aborted) return delivery.requeue();
      if (await removeJobAndFiles(context, job)) removedJobs++;
      accountLog.debug({ event: "account.job_removed", jobId: job._id }, "job and its files removed");
    }
  }
  const removedFiles = await removeOwnedFiles(mongo.db, files, userId);
  const db = mongo.db;
  // Unfinished resumable uploads (gateway/uploads/): chunks in `videos` under the upload's id, no file document yet.
  const uploads = db.collection<{ _id: ObjectId; userId: string }>("uploads");
  for await (const { _id } of uploads.find({ userId }, { projection: { _id: 1 } })) {
    await files.remove("videos", _id);
    await uploads.deleteOne({ _id });
  }
  await db.collection<{ _id: string }>("job_slots").deleteMany({ _id: { $regex: `^${userId}/` } });
  for (const name of USER_COLLECTIONS) await db.collection(name).deleteMany({ userId });
  accountLog.info({ event: "account.deleted", jobs: removedJobs, files: removedFiles }, "account data removed");
}

/** Files in any bucket whose metadata names the user as owner; answers how many were removed. */
async function removeOwnedFiles(db: Db, files: ConverterContext["files"], owner: string): Promise<number> {
  let removed = 0;
  for (const bucket of BUCKETS) {
    const owned = db.collection(`${bucket}.files`).find({ "metadata.owner": owner }, { projection: { _id: 1 } });
    for await (const { _id } of owned) {
      await files.remove(bucket, _id);
      removed++;
    }
  }
  return removed;
}

/**
 * The converter's consumer of `account`: started with the others, stopped first on a stop
 * (a removal in progress then hands its message back between two jobs).
 */
export function accountRemover(context: ConverterContext) {
  const { config, log, mongo, queue } = context;
  const stopping = new AbortController();
  return {
    start: async () => {
      const tombstones = mongo.db.collection(DELETED_ACCOUNTS);
      await tombstones.createIndex({ until: 1 }, { name: "deleted_accounts_expire", expireAfterSeconds: 0 });
      await queue.consume(
        QUEUES.account,
        {
          prefetch: 1,
          maxAttempts: config.MAX_ATTEMPTS,
          onExhausted: ({ userId }) =>
            log.error(
              { event: "account.removal_dead_lettered", userId },
              "a deleted account's data could not be removed; its message is in account.dead",
            ),
        },
        retryAfterMongo(
          mongo,
          log,
          (delivery: Delivery<AccountMessage>) => removeAccount(context, delivery, stopping.signal),
          {
            giveUp: () => stopping.signal.aborted,
          },
        ),
      );
    },
    stop: () => stopping.abort(),
  };
}
