// A job's intake, for the gateway: an upload (multipart or raw) or a link becomes a
// stored video, a job record and a `video` message, or nothing at all. Every step that
// fails undoes the ones before it, also while MongoDB is failing (lib/cleanup.ts).
// The user's quotas (gateway/quotas.ts) are checked before the body is read, bound the
// upload's stream, and are checked again once the video is stored and the job recorded.
import { Readable } from "node:stream";
import { ObjectId } from "mongodb";
import type { Counter } from "prom-client";
import { cleanUp } from "../lib/cleanup.ts";
import { cleanFilename, type FileStore, type StoredFile } from "../lib/files.ts";
import type { Job, JobStore } from "../lib/jobs.ts";
import { limitedJson } from "../lib/json.ts";
import { type AllowList, BadLink, checkPostedLink, linkFilename } from "../lib/link.ts";
import type { Logger } from "../lib/log.ts";
import { ContentTooLarge, Unavailable, Unprocessable, UnsupportedMediaType } from "../lib/problem.ts";
import { QUEUES, type Queue } from "../lib/queue.ts";
import {
  BadMultipart,
  byteLimit,
  formatBytes,
  NotAVideo,
  readMultipartFile,
  TooLarge,
  videoSniffer,
} from "../lib/upload.ts";
import type { Caller } from "./bearer.ts";
import { type Quotas, storageQuotaExceeded } from "./quotas.ts";

export interface IntakeDeps {
  files: FileStore;
  jobs: JobStore;
  queue: Pick<Queue, "publish">;
  log: Logger;
  maxUploadBytes: number;
  allowList: AllowList;
  quotas: Quotas;
  uploadedBytes: Counter;
  jobsCreated: Counter;
}

/** The gateway's intake: `receive(request, user, query)` answers the job it created (or throws a problem). */
export function jobIntake(deps: IntakeDeps) {
  return {
    receive: (request: Request, user: Caller, query: { filename?: string }) => receive(deps, request, user, query),
  };
}
export type JobIntake = ReturnType<typeof jobIntake>;

async function receive(deps: IntakeDeps, request: Request, user: Caller, query: { filename?: string }): Promise<Job> {
  const type = request.headers.get("content-type") ?? "";
  if (!request.body) throw new Unprocessable("the request has no body: send a video");
  if (/^multipart\/form-data/i.test(type)) {
    const room = await admitUpload(deps, user, request, MULTIPART_OVERHEAD_BYTES);
    try {
      return await readMultipartFile(request.body, type, "file", (file) =>
        acceptVideo(deps, user, { ...room, stream: file.stream, filename: file.filename, type: file.contentType }),
      );
    } catch (error) {
      if (error instanceof BadMultipart) throw new Unprocessable(error.message);
      throw error;
    }
  }
  if (/^video\//i.test(type) || /^application\/octet-stream/i.test(type)) {
    const room = await admitUpload(deps, user, request, 0);
    const stream = Readable.fromWeb(request.body as never);
    return acceptVideo(deps, user, { ...room, stream, filename: query.filename ?? "video", type });
  }
  if (/^application\/json/i.test(type)) return acceptLink(deps, user, await limitedJson()({ request }));
  throw new UnsupportedMediaType(
    "send multipart/form-data with a `file` field, the video itself with a video/* content type, or JSON {url}",
  );
}

/**
 * What a multipart body may hold besides the video (its boundaries and part headers, a
 * field or two): its Content-Length less this is taken as the video's size before reading.
 */
const MULTIPART_OVERHEAD_BYTES = 64 * 1024;

interface UploadRoom {
  /** The bytes the user may still store when the upload started. */
  left: number;
  /** What the stream is cut at: MAX_UPLOAD_BYTES, or the room left if that is less. */
  limit: number;
}

/**
 * Before a byte of the upload is read: a job more is within the user's quota, and so is the
 * size the request announces (Content-Length, less `overhead`), as is MAX_UPLOAD_BYTES.
 */
async function admitUpload(deps: IntakeDeps, user: Caller, request: Request, overhead: number): Promise<UploadRoom> {
  const length = Number(request.headers.get("content-length") ?? Number.NaN);
  const declared = Number.isSafeInteger(length) ? Math.max(1, length - overhead) : 1;
  if (declared > deps.maxUploadBytes) throw tooLarge(deps.maxUploadBytes);
  const left = await deps.quotas.admit(user.id, declared);
  return { left, limit: Math.min(deps.maxUploadBytes, left) };
}

const tooLarge = (limit: number) => new ContentTooLarge(`the video is larger than ${formatBytes(limit)}`);

interface Upload extends UploadRoom {
  stream: Readable;
  filename: string;
  /** The declared content type (the stored one is what the bytes show). */
  type: string;
}

/** Stores one upload and queues it; nothing is left behind if any step fails. */
async function acceptVideo(deps: IntakeDeps, user: Caller, upload: Upload): Promise<Job> {
  const { files, jobs, log, quotas } = deps;
  const name = cleanFilename(upload.filename);
  const { stored, mime } = await storeVideo(deps, user, upload, name);
  const jobId = new ObjectId(); // known before the insert, so an insert whose answer was lost can be undone too
  const removeVideo = () => undo(deps, `remove video ${stored.id}`, () => files.remove("videos", stored.id));
  const removeJob = () => undo(deps, `remove job ${jobId}`, () => jobs.remove(jobId));
  const undoBoth = async (error: unknown): Promise<never> => {
    await removeJob();
    await removeVideo();
    throw error;
  };
  await quotas.confirmStored(user.id).catch(async (error) => {
    await removeVideo();
    throw error;
  });
  const record = await jobs
    .create({
      _id: jobId,
      userId: user.id,
      email: user.email,
      videoFileId: stored.id,
      source: { kind: "upload", filename: name, bytes: stored.bytes, contentType: mime },
    })
    .catch(undoBoth);
  await quotas.claimSlot(user.id, jobId).catch(undoBoth);
  await enqueue(deps, record, removeVideo);
  deps.uploadedBytes.inc(stored.bytes);
  log.info({ event: "job.queued", jobId: record._id, userId: user.id, bytes: stored.bytes, type: mime }, "job queued");
  return record;
}

/**
 * Streams the upload into GridFS, checking its size (MAX_UPLOAD_BYTES, or the room left in
 * the user's quota if less) and that it is a video; the file is gone if either fails.
 */
async function storeVideo(
  { files, maxUploadBytes, quotas }: IntakeDeps,
  user: Caller,
  { stream, type, left, limit }: Upload,
  name: string,
): Promise<{ stored: StoredFile; mime: string }> {
  const sniffer = videoSniffer();
  let stored: StoredFile;
  try {
    stored = await files.upload(
      "videos",
      stream,
      { owner: user.id, filename: name, contentType: type || "application/octet-stream" },
      sniffer,
      byteLimit(limit),
    );
  } catch (error) {
    stream.resume();
    if (error instanceof TooLarge && limit < maxUploadBytes) {
      const quota = quotas.limits.storedBytes;
      throw storageQuotaExceeded(quota, quota - left);
    }
    if (error instanceof TooLarge) throw tooLarge(maxUploadBytes);
    if (error instanceof NotAVideo)
      throw new UnsupportedMediaType(`${error.message}: send an MP4, MOV, MKV, WebM, AVI, MPEG-TS or FLV video`);
    throw error;
  }
  return { stored, mime: (await sniffer.sniffed).mime };
}

/** A link job: only the link's form (and a literal forbidden address) is checked here; the converter downloads. */
async function acceptLink(deps: IntakeDeps, user: Caller, body: unknown): Promise<Job> {
  let url: URL;
  try {
    url = checkPostedLink((body as { url?: unknown } | undefined)?.url, deps.allowList);
  } catch (error) {
    if (error instanceof BadLink)
      throw new Unprocessable(`invalid url: ${error.message}`, [{ field: "url", message: error.message }]);
    throw error;
  }
  await deps.quotas.admit(user.id, 1); // its size is not known yet: the converter holds it to the room left
  const record = await deps.jobs.create({
    userId: user.id,
    email: user.email,
    source: {
      kind: "url",
      url: url.href,
      filename: linkFilename(url),
      bytes: 0,
      contentType: "application/octet-stream",
    },
  });
  await deps.quotas.claimSlot(user.id, record._id).catch(async (error) => {
    await undo(deps, `remove job ${record._id}`, () => deps.jobs.remove(record._id));
    throw error;
  });
  await enqueue(deps, record);
  deps.log.info({ event: "job.link_queued", jobId: record._id, userId: user.id, host: url.host }, "link job queued");
  return record;
}

/** Publishes the job to `video`; if the broker does not confirm, the job (and its video) are removed: 503. */
async function enqueue(deps: IntakeDeps, record: Job, removeVideo: () => Promise<void> = async () => {}) {
  try {
    const jobId = record._id.toHexString();
    await deps.queue.publish(QUEUES.video, { jobId }, { messageId: jobId });
  } catch (error) {
    await undo(deps, `remove job ${record._id}`, () => deps.jobs.remove(record._id));
    await removeVideo();
    deps.log.error(
      { event: "job.enqueue_failed", err: error, jobId: record._id, userId: record.userId },
      "could not queue the job; removed it",
    );
    throw new Unavailable("the job could not be queued right now; nothing was kept, please try again");
  }
  deps.jobsCreated.inc();
}

/**
 * A rollback step that must happen even if MongoDB is failing right now (which is often
 * why we roll back): tried at once, then retried in the background until it works.
 */
const undo = ({ log }: IntakeDeps, what: string, action: () => Promise<unknown>) =>
  cleanUp(what, action, { log }).then(() => {});
