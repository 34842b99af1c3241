// A link job's first step: the video is fetched (lib/link.ts checks every hop, the size
// and the time) into GridFS `videos` and attached to the job, which is then converted
// like an upload. The owner's storage quota holds the download to the room they have left.
// A download that names its file (Content-Disposition) names the job too: a better name
// than the link's (`…/download?id=7`) for the MP3, its title tag and the emails.
import type { Transform } from "node:stream";
import { cleanFilename } from "../lib/filenames.ts";
import type { FileStore } from "../lib/files.ts";
import type { Job, JobStore } from "../lib/jobs.ts";
import { type AllowList, BadLink, fetchVideo } from "../lib/link.ts";
import type { Logger } from "../lib/log.ts";
import { byteLimit } from "../lib/upload.ts";
import { storageQuotaMessage, type UsageStore } from "../lib/usage.ts";
import { BadInput } from "./errors.ts";

/** What every download of a worker shares. */
export interface LinkDownloads {
  files: FileStore;
  jobs: JobStore;
  allow: AllowList;
  maxBytes: number;
  usage: UsageStore;
  /** USER_STORAGE_BYTES */
  storageBytes: number;
  timeoutMs: number;
}

export interface DownloadOptions {
  /** Aborting it (the worker is stopping) stops the download, which rejects with the signal's reason. */
  signal: AbortSignal;
  /** The share of the job's progress (percent) the download fills; the job shows it once attached. */
  share: number;
  /** Called with the job's progress (percent, below `share`) while the body arrives, if its size is known. */
  report: (percent: number) => void;
  log: Logger;
}

/** The job with its video attached, or null if the job went away meanwhile. A refused link throws BadInput. */
export async function downloadVideo(job: Job, links: LinkDownloads, options: DownloadOptions): Promise<Job | null> {
  const { files, jobs } = links;
  const { signal, share, report, log } = options;
  signal.throwIfAborted();
  const started = performance.now();
  const jobId = job._id.toHexString();
  // A worker killed mid-download leaves a partial file nobody points to: start clean.
  await files.removeJobFiles("videos", jobId);
  const fetchOptions = {
    allow: links.allow,
    maxBytes: links.maxBytes,
    timeoutMs: links.timeoutMs,
    signal,
    // An unknown size shows no fraction.
    onProgress: (bytes: number, total?: number) => total && report(Math.min(share - 1, (bytes / total) * share)),
  };
  const metadata = { owner: job.userId, filename: job.source.filename, contentType: "application/octet-stream", jobId };
  const quota = await storageRoom(job, links);
  const stored = await fetchVideo(job.source.url ?? "", fetchOptions, async (video) => {
    if ((video.totalBytes ?? 0) > quota.left) throw quota.exceeded();
    const filename = video.filename?.trim() ? cleanFilename(video.filename) : undefined;
    const named = filename ? { ...metadata, filename } : metadata;
    const file = await files.upload("videos", video.source, named, ...video.transforms, quota.limit);
    return { ...file, mime: (await video.sniffed).mime, url: video.url, filename };
  }).catch((error) => {
    if (quota.passedBy(error)) throw new BadInput(quota.exceeded().message, "quota");
    if (!(error instanceof BadLink)) throw error; // LinkUnavailable, store trouble, HandedBack
    log.info({ event: "link.refused", reason: error.message, ...error.details }, "link refused");
    throw new BadInput(error.message, "link");
  });
  const video = { bytes: stored.bytes, contentType: stored.mime, filename: stored.filename };
  const attached = await jobs.attachVideo(job._id, stored.id, video, share);
  if (!attached) {
    await files.remove("videos", stored.id);
    log.info({ event: "job.gone" }, "job deleted or finished elsewhere while downloading; video dropped");
    return null;
  }
  const seconds = (performance.now() - started) / 1000;
  const host = new URL(stored.url).host;
  const named = Boolean(stored.filename);
  log.info(
    { event: "link.downloaded", bytes: stored.bytes, type: stored.mime, host, seconds, named },
    "link downloaded",
  );
  return attached;
}

/** The video would pass its owner's storage quota (USER_STORAGE_BYTES): the job fails naming it. */
class OverQuota extends Error {
  override name = "OverQuota";
}

/**
 * The room the job's owner has left (USER_STORAGE_BYTES less what they store now), as a
 * byte limit for the download's stream. Like the gateway's first check it is a snapshot:
 * uploads racing this download can together pass the quota by up to this video's size.
 */
async function storageRoom(job: Job, { usage, storageBytes }: LinkDownloads) {
  const used = await usage.storedBytes(job.userId);
  const left = storageBytes - used;
  const exceeded = () => new OverQuota(storageQuotaMessage(storageBytes, used));
  if (left <= 0) throw new BadInput(exceeded().message, "quota");
  const limit: Transform & { bytes: number } = byteLimit(left);
  return {
    left,
    limit,
    exceeded,
    /** The download failed because of the quota: announced too large, or cut by `limit` (lib/link.ts words that TooLarge as a BadLink). */
    passedBy: (error: unknown) => error instanceof OverQuota || limit.bytes > left,
  };
}
