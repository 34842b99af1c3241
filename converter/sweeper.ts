// The retention sweeper: a finished job, its video, its MP3 and its cover go once its `expiresAt`
// has passed. Every converter runs one, and they need nothing but the job to agree:
// each expired job is claimed with a conditional update (`sweepingAt`), then its files
// are removed, then the job. The job is removed last, so it is the to-do list: a sweeper
// killed in between leaves its claim, and once the claim is older than the lease the
// next sweep (this converter's or another's) takes it over and finishes it. Removing a
// file that is already gone (or half gone: GridFS removes the file record, then its
// chunks) is no error, so finishing twice is harmless.
import type { FileStore } from "../lib/files.ts";
import { type Job, type JobStore, jobFiles } from "../lib/jobs.ts";
import type { Logger } from "../lib/log.ts";

export interface SweeperDeps {
  jobs: JobStore;
  files: FileStore;
  log: Logger;
}

export interface SweeperOptions {
  /** Pause between sweeps (10 minutes, give or take a tenth so replicas spread out). */
  everyMs?: number;
  /** How long a claim holds; an older one is a dead sweeper's, taken over (5 minutes). */
  leaseMs?: number;
}

export function retentionSweeper(
  { jobs, files, log }: SweeperDeps,
  { everyMs = 10 * 60_000, leaseMs = 5 * 60_000 }: SweeperOptions = {},
) {
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<unknown> = Promise.resolve();

  /** Removes every expired job no live sweeper holds, one claim at a time; answers how many this sweeper removed. */
  async function sweepOnce(): Promise<number> {
    let swept = 0;
    while (!stopped) {
      const claimed = await jobs.claimExpired(new Date(), leaseMs);
      if (!claimed) break;
      if (await sweepJob(claimed)) swept++;
    }
    return swept;
  }

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

  /** One scheduled sweep; trouble (MongoDB away) is logged and the next sweep tries again. */
  async function scheduledSweep(first: boolean): Promise<void> {
    try {
      if (first) {
        const dated = await jobs.dateUndatedFinished();
        if (dated) log.info({ event: "retention.dated", jobs: dated }, "finished jobs without an expiry got one");
      }
      await sweepOnce();
    } catch (error) {
      log.warn({ event: "retention.sweep_failed", err: error }, "retention sweep failed; will try again");
    }
  }

  function schedule(delayMs: number, first = false) {
    timer = setTimeout(() => {
      running = scheduledSweep(first).finally(() => {
        if (!stopped) schedule(everyMs * (0.9 + Math.random() * 0.2));
      });
    }, delayMs);
    timer.unref?.();
  }

  return {
    sweepOnce,
    /** Sweeps now, then every `everyMs`. */
    start() {
      stopped = false;
      schedule(0, true);
    },
    /**
     * No new claims; the job being swept gets a moment to finish. Not longer: with MongoDB
     * away a sweep could wait minutes, and a claim left behind is taken over later anyway.
     */
    async stop(waitMs = 2000) {
      stopped = true;
      clearTimeout(timer);
      await Promise.race([running, Bun.sleep(waitMs)]);
    },
  };
}

export type RetentionSweeper = ReturnType<typeof retentionSweeper>;
