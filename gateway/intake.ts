// A job's intake, for the gateway: an upload (multipart or raw, a video or an audio file)
// or a link, with its conversion options (gateway/options.ts), becomes a stored file, a
// job record and a `video` message, or nothing at all. Every step that
// fails undoes the ones before it, also while MongoDB is failing (lib/cleanup.ts).
// The user's quotas (gateway/quotas.ts) are checked before the body is read, bound the
// upload's stream, and are checked again once the video is stored and the job recorded.
// Given a digest (an Idempotency-Key's request: gateway/idempotency.ts), the intake feeds
// it what the request asks for, the file's bytes as they stream past.
import { ObjectId } from "mongodb";
import type { Counter } from "prom-client";
import { cleanUp } from "../lib/cleanup.ts";
import type { FileStore, StoredFile } from "../lib/files.ts";
import type { Job, JobStore } from "../lib/jobs.ts";
import { limitedJson } from "../lib/json.ts";
import { type AllowList, BadLink, checkPostedLink, linkFilename } from "../lib/link.ts";
import type { Logger } from "../lib/log.ts";
import { BadMultipart, readMultipartFile } from "../lib/multipart.ts";
import type { ConversionOptions } from "../lib/options.ts";
import { ContentTooLarge, Unavailable, Unprocessable, UnsupportedMediaType } from "../lib/problem.ts";
import { QUEUES, type Queue } from "../lib/queue.ts";
import { bodyPieces, checkedUpload, formatBytes, NotAVideo, TooLarge } from "../lib/upload.ts";
import type { Caller } from "./bearer.ts";
import { badOptions, type FieldError, type OptionEntry, parseOptions, withGatewayDefaults } from "./options.ts";
import { type Quotas, storageQuotaExceeded } from "./quotas.ts";
import { formDescription, jsonDescription, type RequestDigest, rawDescription } from "./request-digest.ts";
import { formFilename, rawBodyFilename } from "./upload-names.ts";

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

/** The gateway's intake: `receive(request, user, digest?)` answers the job it created (or throws a problem). */
export function jobIntake(deps: IntakeDeps) {
  return {
    receive: (request: Request, user: Caller, digest?: RequestDigest) => receive(deps, request, user, digest),
    maxUploadBytes: deps.maxUploadBytes,
  };
}
export type JobIntake = ReturnType<typeof jobIntake>;

async function receive(deps: IntakeDeps, request: Request, user: Caller, digest?: RequestDigest): Promise<Job> {
  const type = request.headers.get("content-type") ?? "";
  if (!request.body) throw new Unprocessable("the request has no body: send a video or an audio file");
  const query = [...new URL(request.url).searchParams];
  if (/^multipart\/form-data/i.test(type)) return receiveForm(deps, request, user, type, query, digest);
  if (/^(video|audio)\//i.test(type) || /^application\/octet-stream/i.test(type))
    return receiveRaw(deps, request, user, type, query, digest);
  if (/^application\/json/i.test(type)) {
    const body = await limitedJson()({ request });
    digest?.describe(jsonDescription(query, body));
    return receiveLink(deps, user, query, body);
  }
  throw new UnsupportedMediaType(
    "send multipart/form-data with a `file` field, the video or audio itself with a video/* or audio/* content type, or JSON {url}",
  );
}

/** How the options came: as form fields, JSON fields or query parameters (the log says which). */
type Way = "form" | "json" | "query";
type QueryEntries = [string, string][];

/** The query's options: every parameter but `filename`, which names a raw body. */
const queryOptions = (query: QueryEntries) => query.filter(([name]) => name !== "filename");
const queryFilename = (query: QueryEntries) => query.find(([name]) => name === "filename")?.[1];

/**
 * The user's options from `entries`, or a 422 naming every bad field (with `otherErrors`,
 * the way in's own) and a log line; nothing is stored by then, or the caller removes it.
 */
function chosenOptions(
  { log }: IntakeDeps,
  user: Caller,
  way: Way,
  entries: OptionEntry[],
  otherErrors: FieldError[] = [],
): ConversionOptions {
  const { options, errors } = parseOptions(entries);
  errors.push(...otherErrors);
  if (!errors.length) return options;
  const fields = [...new Set(errors.map((error) => error.field))];
  log.info({ event: "job.options_refused", userId: user.id, way, fields }, "a new job was refused: bad options");
  throw badOptions(errors);
}

/**
 * A multipart upload: the fields before the file are checked as it starts (a bad one and
 * nothing is stored), those after it once it is stored (a bad one, or a form that breaks
 * after the file, and it is removed).
 */
async function receiveForm(
  deps: IntakeDeps,
  request: Request,
  user: Caller,
  type: string,
  query: QueryEntries,
  digest?: RequestDigest,
): Promise<Job> {
  const room = await admitUpload(deps, user, request, MULTIPART_OVERHEAD_BYTES);
  const inQuery = queryOptions(query);
  const stored: { upload?: StoredUpload } = {}; // once the file is stored: removed if the rest of the form fails
  let options: ConversionOptions;
  try {
    const { fields, result: sentName } = await readMultipartFile(request.body!, type, "file", async (file, before) => {
      chosenOptions(deps, user, "form", [...inQuery, ...before]);
      const filename = formFilename(file.filename);
      const hashing = digest?.bytes();
      stored.upload = await storeUpload(deps, user, {
        ...room,
        pieces: file.pieces,
        stop: file.stop,
        filename,
        type: file.contentType,
        hashing,
      });
      return file.filename;
    });
    digest?.describe(formDescription(query, fields, sentName));
    options = chosenOptions(deps, user, "form", [...inQuery, ...fields]);
  } catch (error) {
    if (stored.upload) await removeVideo(deps, stored.upload.stored.id);
    if (error instanceof BadMultipart) throw new Unprocessable(error.message);
    throw error;
  }
  return recordUpload(deps, user, stored.upload!, options);
}

/** A raw video/* or audio/* body: its options are in the query, checked before a byte is read. */
async function receiveRaw(
  deps: IntakeDeps,
  request: Request,
  user: Caller,
  type: string,
  query: QueryEntries,
  digest?: RequestDigest,
) {
  const options = chosenOptions(deps, user, "query", queryOptions(query));
  const room = await admitUpload(deps, user, request, 0);
  const pieces = bodyPieces(request.body!);
  const filename = rawBodyFilename(request, queryFilename(query));
  digest?.describe(rawDescription(query, type, request));
  const hashing = digest?.bytes();
  const upload = { ...room, pieces, stop: pieces.cancel, filename, type, hashing };
  return recordUpload(deps, user, await storeUpload(deps, user, upload), options);
}

/** JSON {url, ...options}: the link and the options are checked together, every bad field named at once. */
async function receiveLink(deps: IntakeDeps, user: Caller, query: QueryEntries, body: unknown): Promise<Job> {
  const fields = body !== null && typeof body === "object" && !Array.isArray(body) ? Object.entries(body) : [];
  let url: URL | undefined;
  const linkErrors: FieldError[] = [];
  try {
    url = checkPostedLink((body as { url?: unknown } | undefined)?.url, deps.allowList);
  } catch (error) {
    if (!(error instanceof BadLink)) throw error;
    linkErrors.push({ field: "url", message: error.message });
  }
  const entries = [...queryOptions(query), ...fields.filter(([name]) => name !== "url")];
  const options = chosenOptions(deps, user, "json", entries, linkErrors);
  return acceptLink(deps, user, url!, options);
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
  /** The file's bytes as they arrive. */
  pieces: AsyncIterable<Uint8Array>;
  /** Ends `pieces` early: a write to GridFS failed. */
  stop: (error: Error) => void;
  /** The name as its owner typed it, cleaned (gateway/upload-names.ts). */
  filename: string;
  /** The declared content type (the stored one is what the bytes show). */
  type: string;
  /** Hashes the bytes on their way (an Idempotency-Key's digest). */
  hashing?: (piece: Uint8Array) => void;
}

/** A video or audio file stored in GridFS, not yet a job. */
interface StoredUpload {
  stored: StoredFile;
  /** What its first bytes show it is. */
  mime: string;
  filename: string;
}

/** Records the stored upload as a job and queues it; nothing is left behind if any step fails. */
async function recordUpload(
  deps: IntakeDeps,
  user: Caller,
  { stored, mime, filename }: StoredUpload,
  options: ConversionOptions,
): Promise<Job> {
  const { jobs, log, quotas } = deps;
  const jobId = new ObjectId(); // known before the insert, so an insert whose answer was lost can be undone too
  const removeJob = () => undo(deps, `remove job ${jobId}`, () => jobs.remove(jobId));
  const undoBoth = async (error: unknown): Promise<never> => {
    await removeJob();
    await removeVideo(deps, stored.id);
    throw error;
  };
  await quotas.confirmStored(user.id).catch(async (error) => {
    await removeVideo(deps, stored.id);
    throw error;
  });
  const record = await jobs
    .create({
      _id: jobId,
      userId: user.id,
      email: user.email,
      emailVerified: user.emailVerified,
      videoFileId: stored.id,
      source: { kind: "upload", filename, bytes: stored.bytes, contentType: mime },
      options: withGatewayDefaults(options),
      requestedOptions: options,
    })
    .catch(undoBoth);
  await quotas.claimSlot(user.id, jobId).catch(undoBoth);
  await enqueue(deps, record, () => removeVideo(deps, stored.id));
  deps.uploadedBytes.inc(stored.bytes);
  log.info({ event: "job.queued", jobId: record._id, userId: user.id, bytes: stored.bytes, type: mime }, "job queued");
  return record;
}

const removeVideo = (deps: IntakeDeps, id: ObjectId) =>
  undo(deps, `remove video ${id}`, () => deps.files.remove("videos", id));

/**
 * Streams the upload into GridFS, checking its size (MAX_UPLOAD_BYTES, or the room left in
 * the user's quota if less) and that it is a video or audio; the file is gone if either fails.
 */
async function storeUpload(
  { files, maxUploadBytes, quotas }: IntakeDeps,
  user: Caller,
  { pieces, stop, type, left, limit, filename, hashing }: Upload,
): Promise<StoredUpload> {
  const checked = checkedUpload(pieces, limit, hashing);
  const metadata = { owner: user.id, filename, contentType: type || "application/octet-stream" };
  let stored: StoredFile;
  try {
    stored = await files.writeFile("videos", checked.pieces, metadata, stop);
  } catch (error) {
    if (error instanceof TooLarge && limit < maxUploadBytes) {
      const quota = quotas.limits.storedBytes;
      throw storageQuotaExceeded(quota, quota - left);
    }
    if (error instanceof TooLarge) throw tooLarge(maxUploadBytes);
    if (error instanceof NotAVideo) throw new UnsupportedMediaType(`${error.message}: ${WHAT_TO_SEND}`);
    throw error;
  }
  return { stored, mime: checked.sniffed().mime, filename };
}

const WHAT_TO_SEND =
  "send a video (MP4, MOV, MKV, WebM, AVI, MPEG-TS, FLV) or an audio file (M4A, MP3, WAV, FLAC, Ogg, Opus)";

/** A link job: only the link's form (and a literal forbidden address) is checked here; the converter downloads. */
async function acceptLink(deps: IntakeDeps, user: Caller, url: URL, options: ConversionOptions): Promise<Job> {
  await deps.quotas.admit(user.id, 1); // its size is not known yet: the converter holds it to the room left
  const record = await deps.jobs.create({
    userId: user.id,
    email: user.email,
    emailVerified: user.emailVerified,
    source: {
      kind: "url",
      url: url.href,
      filename: linkFilename(url),
      bytes: 0,
      contentType: "application/octet-stream",
    },
    options: withGatewayDefaults(options),
    requestedOptions: options,
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
