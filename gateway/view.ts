// A job as the API shows it: ids as hex text, dates as ISO text, optional parts only
// when set (the MP3 with its file id once there is one), and the links a client follows.
import type { Job } from "../lib/jobs.ts";
import type { JobView } from "./models.ts";

export function jobView(job: Job): JobView {
  const id = job._id.toHexString();
  return {
    id,
    status: job.status,
    ...(job.phase ? { phase: job.phase } : {}),
    progress: job.progress,
    ...(job.error ? { error: job.error } : {}),
    source: job.source,
    ...(job.audio && job.audioFileId ? { audio: { ...job.audio, fileId: job.audioFileId.toHexString() } } : {}),
    createdAt: job.createdAt.toISOString(),
    updatedAt: job.updatedAt.toISOString(),
    ...(job.expiresAt ? { expiresAt: job.expiresAt.toISOString() } : {}),
    links: {
      self: `/jobs/${id}`,
      events: `/jobs/${id}/events`,
      audio: `/jobs/${id}/audio`,
      ...(job.status === "failed" ? { retry: `/jobs/${id}/retry` } : {}),
    },
  };
}
