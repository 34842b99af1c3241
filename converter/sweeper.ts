// The retention sweeper: a finished job, its video, its MP3 and its cover go once its `expiresAt`
// has passed. Every converter runs one, and they need nothing but the job to agree
// (lib/lease-sweeper.ts): each expired job is claimed with a conditional update
// (`sweepingAt`), then its files are removed, then the job. The job is removed last, so it
// is the to-do list: a claim left by a killed sweeper is taken over once older than the
// lease. Removing a file that is already gone (or half gone: GridFS removes the file
// record, then its chunks) is no error, so finishing twice is harmless.
import type { FileStore } from "../lib/files.ts";
import { type Job, type JobStore, jobFiles } from "../lib/jobs.ts";
import { type LeaseSweeperOptions, leaseSweeper } from "../lib/lease-sweeper.ts";
import type { Logger } from "../lib/log.ts";

export interface SweeperDeps {
  jobs: JobStore;
  files: FileStore;
  log: Logger;
}

export type SweeperOptions = LeaseSweeperOptions;

export function retentionSweeper({ jobs, files, log }: SweeperDeps, options: SweeperOptions = {}) {
  /** Files first, then the job: whatever stops this midway, the claimed job is still there to finish. */
  async function sweepJob(job: Job): Promise<boolean> {
    await Promise.all(jobFiles(job).map(({ bucket, id }) => files.remove(bucket, id)));
    const removed = await jobs.removeSwept(job._id);
    if (removed)
      log.info(
        {
          event: "job.expired",
          jobId: job._id,
          userId: job.userId,
          status: job.status,
          expiresAt: job.expiresAt,
          ...(job.sweepingAt ? { tookOver: job.sweepingAt } : {}),
        },
        "expired job removed with its files",
      );
    return removed;
  }

  return leaseSweeper(
    {
      claim: (now, leaseMs) => jobs.claimExpired(now, leaseMs),
      remove: sweepJob,
      failed: (error) =>
        log.warn({ event: "retention.sweep_failed", err: error }, "retention sweep failed; will try again"),
      // Jobs finished before retention existed get an expiry, before the first sweep.
      async beforeFirst() {
        const dated = await jobs.dateUndatedFinished();
        if (dated) log.info({ event: "retention.dated", jobs: dated }, "finished jobs without an expiry got one");
      },
      firstDelayMs: () => 0, // sweeps at start, then every `everyMs`
    },
    options,
  );
}

export type RetentionSweeper = ReturnType<typeof retentionSweeper>;
