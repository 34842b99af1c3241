// A job deleted while a worker downloads or converts it (DELETE /jobs/:id): the worker
// looks at the job every second and, once it is gone, aborts that message's work (the
// download, ffprobe, ffmpeg) with JobGone, which is acknowledged, not retried. Looking
// costs one indexed read a second per message in hand and needs nothing from the gateway.
import type { ObjectId } from "mongodb";
import type { JobStore } from "../lib/jobs.ts";
import { JobGone } from "./errors.ts";

/** How often a worker looks whether the job it works on still exists. */
export const WATCH_INTERVAL_MS = 1000;

/** Aborts `controller` with JobGone once the job no longer exists; call the answer to stop watching. */
export function watchJob(jobs: JobStore, jobId: ObjectId, controller: AbortController): () => void {
  let looking = false;
  const timer = setInterval(async () => {
    if (looking || controller.signal.aborted) return;
    looking = true;
    try {
      const job = await jobs.collection.findOne({ _id: jobId }, { projection: { _id: 1 } });
      if (!job) controller.abort(new JobGone());
    } catch {
      // The store is away: that says nothing about the job; the next look decides.
    } finally {
      looking = false;
    }
  }, WATCH_INTERVAL_MS);
  return () => clearInterval(timer);
}
