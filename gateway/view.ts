// A job as the API shows it: ids as hex text, dates as ISO text, optional parts only
// when set (the MP3 with its file id once there is one), the options as applied (the
// defaults the gateway knows filled in for a job from before options), and the links a
// client follows (the cover's once there is one).
import type { Job } from "../lib/jobs.ts";
import { GATEWAY_DEFAULTS } from "../lib/options.ts";
import type { JobView } from "./models.ts";

/** A job and, while it is queued, its place in line (counted when it is read, never stored). */
export type PlacedJob = Job & { queuePosition?: number };

export function jobView(job: PlacedJob): JobView {
  const id = job._id.toHexString();
  return {
    id,
    status: job.status,
    ...(job.phase ? { phase: job.phase } : {}),
    progress: job.progress,
    ...(job.error ? { error: job.error } : {}),
    ...(job.status === "queued" && job.queuePosition ? { queuePosition: job.queuePosition } : {}),
    source: job.source,
    options: job.options ?? { ...GATEWAY_DEFAULTS },
    ...(job.audio && job.audioFileId ? { audio: { ...job.audio, fileId: job.audioFileId.toHexString() } } : {}),
    createdAt: job.createdAt.toISOString(),
    updatedAt: job.updatedAt.toISOString(),
    ...(job.expiresAt ? { expiresAt: job.expiresAt.toISOString() } : {}),
    links: {
      self: `/jobs/${id}`,
      events: `/jobs/${id}/events`,
      audio: `/jobs/${id}/audio`,
      ...(job.coverFileId ? { cover: `/jobs/${id}/cover` } : {}),
      ...(job.status === "failed" ? { retry: `/jobs/${id}/retry` } : {}),
      ...(job.status === "done" ? { share: `/jobs/${id}/share` } : {}),
    },
  };
}
