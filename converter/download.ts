// A link job's first step: the video is fetched (lib/link.ts checks every hop, the size
// and the time) into GridFS `videos` and attached to the job, which is then converted
// like an upload. The owner's storage quota holds the download to the room they have left.
// A download that names its file (Content-Disposition) names the job too: a better name
// than the link's (`…/download?id=7`) for the MP3, its title tag and the emails.
// A link that answers a web page (or names a known video site) is a video page: with
// LINK_PAGES on, yt-dlp finds its video (converter/pages.ts), which is stored the same
// way and names the job by the video's title.
import { createReadStream } from "node:fs";
import type { Transform } from "node:stream";
import { cleanFilename } from "../lib/filenames.ts";
import type { FileStore } from "../lib/files.ts";
import type { Job, JobStore } from "../lib/jobs.ts";
import { type AllowList, BadLink, fetchVideo, isWebPage } from "../lib/link.ts";
import type { Logger } from "../lib/log.ts";
import { byteLimit, formatBytes, NotAVideo, TooLarge, videoSniffer } from "../lib/upload.ts";
import { storageQuotaMessage, type UsageStore } from "../lib/usage.ts";
import { BadInput } from "./errors.ts";
import { isKnownVideoSite, withPageVideo } from "./pages.ts";

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
  /** Links to video pages (LINK_PAGES), or null when they are refused as before. */
  pages: PageDownloads | null;
}

export interface PageDownloads {
  /** yt-dlp's version, or null when it is not installed: pages are then refused (and the log says why). */
  ytdlp: Promise<string | null>;
  /** MAX_AUDIO_SECONDS */
  maxSeconds: number;
  /** TMP_DIR: yt-dlp downloads into a job directory there. */
  tmpDir: string;
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

/** The video as stored, before it is attached to the job. */
interface StoredVideo {
  id: Job["_id"];
  bytes: number;
  mime: string;
  /** The name the job takes, if the download gave one. */
  filename: string | undefined;
  host: string;
  /** yt-dlp's extractor, for a page. */
  extractor?: string;
}

/** The job with its video attached, or null if the job went away meanwhile. A refused link throws BadInput. */
export async function downloadVideo(job: Job, links: LinkDownloads, options: DownloadOptions): Promise<Job | null> {
  const { files, jobs } = links;
  const { signal, log } = options;
  signal.throwIfAborted();
  const started = performance.now();
  const jobId = job._id.toHexString();
  // A worker killed mid-download leaves a partial file nobody points to: start clean.
  await files.removeJobFiles("videos", jobId);
  const link = job.source.url ?? "";
  const pages = await followsPages(links, log);
  const stored =
    pages && isKnownVideoSite(link)
      ? await fromPage(job, links, options)
      : await fromLink(job, links, options, pages).catch((error) => {
          if (pages && isWebPage(error)) return fromPage(job, links, options);
          throw error;
        });
  const video = { bytes: stored.bytes, contentType: stored.mime, filename: stored.filename };
  const attached = await jobs.attachVideo(job._id, stored.id, video, options.share);
  if (!attached) {
    await files.remove("videos", stored.id);
    log.info({ event: "job.gone" }, "job deleted or finished elsewhere while downloading; video dropped");
    return null;
  }
  const seconds = (performance.now() - started) / 1000;
  const { bytes, mime: type, host, extractor } = stored;
  const named = Boolean(stored.filename);
  log.info({ event: "link.downloaded", bytes, type, host, seconds, named, extractor }, "link downloaded");
  return attached;
}

/** Whether video pages are followed: LINK_PAGES, and yt-dlp installed. */
async function followsPages(links: LinkDownloads, log: Logger): Promise<boolean> {
  if (!links.pages) return false;
  if ((await links.pages.ytdlp) !== null) return true;
  log.warn({ event: "page.ytdlp_missing" }, "yt-dlp is not installed: links to video pages are refused");
  return false;
}

/** The link fetched as a video file. A web page is thrown as it is (BadLink) when pages are followed. */
async function fromLink(job: Job, links: LinkDownloads, options: DownloadOptions, pages: boolean) {
  const { files } = links;
  const { signal, log } = options;
  const fetchOptions = {
    allow: links.allow,
    maxBytes: links.maxBytes,
    timeoutMs: links.timeoutMs,
    signal,
    onProgress: downloadProgress(options),
  };
  const metadata = videoMetadata(job);
  const quota = await storageRoom(job, links);
  return fetchVideo(job.source.url ?? "", fetchOptions, async (video): Promise<StoredVideo> => {
    if ((video.totalBytes ?? 0) > quota.left) throw quota.exceeded();
    const filename = video.filename?.trim() ? cleanFilename(video.filename) : undefined;
    const named = filename ? { ...metadata, filename } : metadata;
    const file = await files.upload("videos", video.source, named, ...video.transforms, quota.limit);
    return { ...file, mime: (await video.sniffed).mime, host: new URL(video.url).host, filename };
  }).catch((error) => {
    if (quota.passedBy(error)) throw new BadInput(quota.exceeded().message, "quota");
    if (!(error instanceof BadLink)) throw error; // LinkUnavailable, store trouble, HandedBack
    if (pages && isWebPage(error)) throw error; // a video page: converter/pages.ts
    log.info({ event: "link.refused", reason: error.message, ...error.details }, "link refused");
    throw new BadInput(error.message, "link");
  });
}

/** The link as a video page: yt-dlp downloads its video, which is stored named by its title. */
async function fromPage(job: Job, links: LinkDownloads, options: DownloadOptions): Promise<StoredVideo> {
  const { files, pages } = links;
  const { signal, log } = options;
  const link = job.source.url ?? "";
  const host = URL.parse(link)?.host ?? "";
  log.info({ event: "page.following", host, known: isKnownVideoSite(link) }, "following a video page");
  const quota = await storageRoom(job, links);
  const maxBytes = Math.min(links.maxBytes, quota.left);
  const pageOptions = {
    allow: links.allow,
    maxBytes,
    maxSeconds: pages!.maxSeconds,
    timeoutMs: links.timeoutMs,
    tmpDir: pages!.tmpDir,
    jobId: job._id.toHexString(),
    signal,
    onProgress: downloadProgress(options),
    log,
  };
  return withPageVideo(link, pageOptions, async (video): Promise<StoredVideo> => {
    const filename = cleanFilename(`${video.title || "video"}.${video.ext}`);
    const sniffer = videoSniffer();
    const metadata = { ...videoMetadata(job), filename };
    const file = await files.upload("videos", createReadStream(video.path), metadata, sniffer, quota.limit);
    return { ...file, mime: (await sniffer.sniffed).mime, host, filename, extractor: video.extractor };
  }).catch((error) => {
    if (quota.passedBy(error) || (error instanceof TooLarge && maxBytes < links.maxBytes))
      throw new BadInput(quota.exceeded().message, "quota");
    const refusal =
      error instanceof TooLarge
        ? new BadInput(`the video is larger than ${formatBytes(error.limit)}`, "link")
        : error instanceof NotAVideo
          ? new BadInput("the page's video is not a video or an audio file", "link")
          : error;
    if (!(refusal instanceof BadInput)) throw refusal; // LinkUnavailable, store trouble, HandedBack
    const { ytdlp } = error as { ytdlp?: string };
    log.info({ event: "page.refused", reason: refusal.message, kind: refusal.kind, ytdlp }, "video page refused");
    throw refusal;
  });
}

/** The download's bytes as the job's progress, within its share (an unknown size shows no fraction). */
const downloadProgress =
  ({ share, report }: DownloadOptions) =>
  (bytes: number, total?: number) =>
    total && report(Math.min(share - 1, (bytes / total) * share));

const videoMetadata = (job: Job) => ({
  owner: job.userId,
  filename: job.source.filename,
  contentType: "application/octet-stream",
  jobId: job._id.toHexString(),
});

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
