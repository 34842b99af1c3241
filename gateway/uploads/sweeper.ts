// Expired uploads go: an upload nobody added to for 24 hours (its `expiresAt`), its
// document and its bytes (the chunks, and the GridFS file of one whose job was never made);
// a finished upload's file is its job's, so only its document goes. Every gateway replica
// runs one, and they need nothing but the document to agree (lib/lease-sweeper.ts): each
// expired upload is claimed by a conditional update (`sweepingAt`), its bytes removed, then
// the document, which is the to-do list: a claim older than the lease is a dead sweeper's,
// taken over.
import type { FileStore } from "../../lib/files.ts";
import type { JobStore } from "../../lib/jobs.ts";
import { type LeaseSweeperOptions, leaseSweeper } from "../../lib/lease-sweeper.ts";
import type { Logger } from "../../lib/log.ts";
import type { UploadRecord, UploadStore } from "./store.ts";

export interface UploadSweeperDeps {
  uploads: UploadStore;
  files: FileStore;
  jobs: JobStore;
  log: Logger;
}

export function uploadSweeper({ uploads, files, jobs, log }: UploadSweeperDeps, options: LeaseSweeperOptions = {}) {
  async function sweepUpload(upload: UploadRecord): Promise<boolean> {
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
    return true;
  }

  return leaseSweeper(
    {
      claim: (now, leaseMs) => uploads.claimExpired(now, leaseMs),
      remove: sweepUpload,
      failed: (error) => log.warn({ event: "upload.sweep_failed", err: error }, "upload sweep failed; will try again"),
      firstDelayMs: (everyMs) => everyMs * Math.random(), // replicas started together spread out
    },
    options,
  );
}

export type UploadSweeper = ReturnType<typeof uploadSweeper>;
