// Expired uploads go: an upload nobody added to for 24 hours (its `expiresAt`), its
// document and its bytes (the chunks, and the GridFS file of one whose job was never made);
// a finished upload's file is its job's, so only its document goes. Every gateway replica
// runs one, and they need nothing but the document to agree: each expired upload is
// claimed by a conditional update (`sweepingAt`), its bytes removed, then the document,
// which is the to-do list: a claim older than the lease is a dead sweeper's, taken over.
import type { FileStore } from "../../lib/files.ts";
import type { JobStore } from "../../lib/jobs.ts";
import type { Logger } from "../../lib/log.ts";
import type { UploadRecord, UploadStore } from "./store.ts";

export interface UploadSweeperDeps {
  uploads: UploadStore;
  files: FileStore;
  jobs: JobStore;
  log: Logger;
}

export function uploadSweeper(
  { uploads, files, jobs, log }: UploadSweeperDeps,
  { everyMs = 10 * 60_000, leaseMs = 5 * 60_000 }: { everyMs?: number; leaseMs?: number } = {},
) {
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<unknown> = Promise.resolve();

  async function sweepUpload(upload: UploadRecord): Promise<void> {
    const jobHasFile = upload.jobId && (await jobs.get(upload.jobId));
    if (!jobHasFile) await files.remove("videos", upload._id);
    await uploads.remove(upload._id);
    log.info(
      {
        event: "upload.expired",
        uploadId: upload._id,
        userId: upload.userId,
        offset: upload.offset,
        length: upload.length,
      },
      "expired upload removed",
    );
  }

  /** Removes every expired upload no live sweeper holds; answers how many this sweep removed. */
  async function sweepOnce(now = new Date()): Promise<number> {
    let swept = 0;
    while (!stopped) {
      const claimed = await uploads.claimExpired(now, leaseMs);
      if (!claimed) break;
      await sweepUpload(claimed);
      swept++;
    }
    return swept;
  }

  function schedule(delayMs: number) {
    timer = setTimeout(() => {
      running = sweepOnce()
        .catch((error) => log.warn({ event: "upload.sweep_failed", err: error }, "upload sweep failed; will try again"))
        .finally(() => {
          if (!stopped) schedule(everyMs * (0.9 + Math.random() * 0.2));
        });
    }, delayMs);
    timer.unref?.();
  }

  return {
    sweepOnce,
    start() {
      stopped = false;
      schedule(everyMs * Math.random()); // replicas started together spread out
    },
    async stop(waitMs = 2000) {
      stopped = true;
      clearTimeout(timer);
      await Promise.race([running, Bun.sleep(waitMs)]);
    },
  };
}

export type UploadSweeper = ReturnType<typeof uploadSweeper>;
