// /uploads: resumable uploads, tus 1.0 with creation, termination and expiration
// (gateway/uploads/protocol.ts), for a bearer token or an API key like every job route.
//   POST   /uploads       Upload-Length, Upload-Metadata (filename, options) → 201 Location
//   HEAD   /uploads/:id   → Upload-Offset (and Job-Id once its job is made)
//   PATCH  /uploads/:id   Upload-Offset + bytes → 204 Upload-Offset; the last byte → Job-Id
//   DELETE /uploads/:id   → 204, the upload and its bytes gone
//   OPTIONS /uploads      what this server speaks (no credentials: a browser's preflight has none)
// The limits apply as early as they can: MAX_UPLOAD_BYTES and the storage quota (with the
// bytes the user's other unfinished uploads announced) and MAX_ACTIVE_JOBS at creation, the
// content sniff on the first bytes, the job's slot when the last byte is stored
// (gateway/uploads/finish.ts). Not in this file: storing bytes (receive.ts), the upload
// documents (store.ts), expiry (sweeper.ts), the OpenAPI text (docs.ts).
import { Elysia } from "elysia";
import { ObjectId } from "mongodb";
import { CHUNK_BYTES } from "../../lib/files.ts";
import { parseJobId } from "../../lib/jobs.ts";
import { BadRequest, ContentTooLarge, HttpProblem, NotFound, UnsupportedMediaType } from "../../lib/problem.ts";
import { formatBytes, NotAVideo } from "../../lib/upload.ts";
import { bearer, type Caller, type TokenVerifier, USER_OR_KEY } from "../bearer.ts";
import { type IdempotentRequests, idempotencyKey } from "../idempotency.ts";
import { requestDigest, tusDescription } from "../request-digest.ts";
import { uploadDocs } from "./docs.ts";
import { type FinishDeps, finishUpload, removeUpload } from "./finish.ts";
import {
  checkPatchType,
  checkVersion,
  contentLength,
  describeUpload,
  httpDate,
  TUS_EXTENSIONS,
  TUS_HEADERS,
  TUS_VERSION,
  UPLOAD_TTL_MS,
  type UploadDescription,
  uploadLength,
  uploadOffset,
} from "./protocol.ts";
import { receive } from "./receive.ts";
import { NO_SUCH_UPLOAD, type UploadRecord } from "./store.ts";

export interface UploadRoutesDeps extends FinishDeps {
  verifier: TokenVerifier;
  maxUploadBytes: number;
  /** Idempotency-Key on POST /uploads (gateway/idempotency.ts): the same key answers the same upload. */
  idempotency?: IdempotentRequests;
}

const WHAT_TO_SEND =
  "send a video (MP4, MOV, MKV, WebM, AVI, MPEG-TS, FLV) or an audio file (M4A, MP3, WAV, FLAC, Ogg, Opus)";

/** The upload's id from its URL; anything else names no upload. */
function uploadId(id: string): ObjectId {
  const parsed = parseJobId(id);
  if (!parsed) throw new NotFound(NO_SUCH_UPLOAD);
  return parsed;
}

/** What an upload's answers say of it: offset, expiry while unfinished, the job once made. */
function uploadHeaders(upload: UploadRecord): Record<string, string> {
  return {
    "Upload-Offset": String(upload.offset),
    ...(upload.state === "receiving" ? { "Upload-Expires": httpDate(upload.expiresAt) } : {}),
    ...(upload.queuedAt && upload.jobId ? { "Job-Id": upload.jobId.toHexString() } : {}),
  };
}

/** 429: as many unfinished uploads as jobs under way are allowed. */
const tooManyUploads = (limit: number) =>
  new HttpProblem(
    429,
    "Too Many Requests",
    `you have ${limit} unfinished upload${limit === 1 ? "" : "s"}, the most at once (MAX_ACTIVE_JOBS): finish or delete one, or wait until one expires`,
    { quota: "activeJobs", limit, retryAfter: 30 },
    { "Retry-After": "30" },
  );

export function uploadRoutes(deps: UploadRoutesDeps) {
  const { uploads, quotas, log, maxUploadBytes, idempotency } = deps;

  /** Before anything is stored: the size, a job more, and room for it beside the user's other unfinished uploads. */
  async function admit(user: Caller, length: number): Promise<void> {
    if (length > maxUploadBytes)
      throw new ContentTooLarge(
        `Upload-Length is ${length} bytes; the largest video accepted is ${formatBytes(maxUploadBytes)} (MAX_UPLOAD_BYTES)`,
      );
    if (length === 0) throw new UnsupportedMediaType(`the file is empty: ${WHAT_TO_SEND}`);
    const reserved = await uploads.reserved(user.id);
    if (reserved.count >= quotas.limits.activeJobs) {
      log.info({ event: "quota.refused", userId: user.id, quota: "activeJobs", way: "tus" }, "upload refused: quota");
      throw tooManyUploads(quotas.limits.activeJobs);
    }
    await quotas.admit(user.id, length + reserved.bytes);
  }

  /** The upload described by `request`'s headers, created (its bytes come with PATCH). */
  async function create(request: Request, user: Caller, described: UploadDescription): Promise<UploadRecord> {
    const length = uploadLength(request.headers);
    if (contentLength(request.headers))
      throw new BadRequest("send the bytes with PATCH: creation-with-upload is not supported");
    await admit(user, length);
    const now = new Date();
    const upload: UploadRecord = {
      _id: new ObjectId(),
      userId: user.id,
      length,
      offset: 0,
      tail: Buffer.alloc(0),
      filename: described.filename,
      declaredType: described.declaredType,
      metadata: described.metadata,
      options: described.options,
      state: "receiving",
      createdAt: now,
      expiresAt: new Date(now.getTime() + UPLOAD_TTL_MS),
    };
    await uploads.create(upload);
    log.info({ event: "upload.created", uploadId: upload._id, userId: user.id, bytes: length }, "upload created");
    return upload;
  }

  /** POST /uploads, once per Idempotency-Key when it has one. */
  async function creation(request: Request, user: Caller, set: { headers: Record<string, unknown> }) {
    checkVersion(request.headers);
    let described: UploadDescription;
    try {
      described = describeUpload(request.headers);
    } catch (error) {
      log.info({ event: "job.options_refused", userId: user.id, way: "tus" }, "an upload was refused: bad metadata");
      throw error;
    }
    const key = idempotency && idempotencyKey(request.headers);
    const answer = async () => {
      const upload = await create(request, user, described);
      return { id: upload._id.toHexString(), expiresAt: upload.expiresAt.getTime() };
    };
    let made: { id: string; expiresAt: number };
    if (!key) made = await answer();
    else {
      const description = tusDescription(request.headers.get("upload-length"), described.entries);
      const repeatDigest = async () => {
        const digest = requestDigest();
        digest.describe(description);
        return digest.value();
      };
      const once = await idempotency.once(
        user,
        key,
        request,
        async (digest) => {
          digest.describe(description);
          const body = await answer();
          return { status: 201, body, jobId: body.id };
        },
        repeatDigest,
      );
      if (once.replayed) set.headers["idempotent-replayed"] = "true";
      made = once.body as typeof made;
    }
    set.headers.location = `/uploads/${made.id}`;
    set.headers["upload-expires"] = httpDate(new Date(made.expiresAt));
    return new Response(null, { status: 201 });
  }

  /** PATCH: the body's bytes at Upload-Offset; the last byte makes the job. */
  async function append(request: Request, id: string, user: Caller, set: { headers: Record<string, unknown> }) {
    checkVersion(request.headers);
    checkPatchType(request.headers);
    const offset = uploadOffset(request.headers);
    const writer = new ObjectId();
    const { upload, tookOver } = await uploads.claim(uploadId(id), user.id, offset, writer);
    if (tookOver && upload.state === "receiving") {
      // A writer whose lease ran out (its gateway died, or lost MongoDB) may have stored chunks it never recorded.
      await deps.files.removeChunksFrom("videos", upload._id, Math.floor(upload.offset / CHUNK_BYTES));
      log.info(
        { event: "upload.taken_over", uploadId: upload._id, userId: user.id },
        "a lapsed writer's lease taken over",
      );
    }
    const declared = contentLength(request.headers);
    if (declared !== undefined && declared > upload.length - offset) {
      await uploads.letGo(upload._id, writer);
      throw new ContentTooLarge(
        `the body (${declared} bytes) runs past Upload-Length: ${upload.length - offset} bytes are left to send`,
      );
    }
    let outcome: Awaited<ReturnType<typeof receive>>;
    try {
      outcome = await receive(deps, upload, writer, request.body);
    } catch (error) {
      if (!(error instanceof NotAVideo)) throw error;
      await removeUpload(deps, upload);
      log.info({ event: "upload.refused", uploadId: upload._id, userId: user.id, reason: "not_media" }, "refused");
      throw new UnsupportedMediaType(`${error.message}: ${WHAT_TO_SEND}`);
    }
    if (outcome.kind === "stored") {
      Object.assign(set.headers, uploadHeaders({ ...upload, offset: outcome.offset, expiresAt: later() }));
      if (outcome.stopped) set.headers.connection = "close";
      return new Response(null, { status: 204 });
    }
    log.info({ event: "upload.received", uploadId: upload._id, userId: user.id, bytes: upload.length }, "received");
    const jobId = await finishUpload(deps, outcome.upload, writer, user);
    Object.assign(set.headers, { "Upload-Offset": String(upload.length), "Job-Id": jobId });
    return new Response(null, { status: 204 });
  }

  /** DELETE: the upload and its bytes go; a finished upload's job keeps its file (delete the job for that). */
  async function terminate(id: string, user: Caller) {
    const upload = await uploads.claimForRemoval(uploadId(id), user.id);
    if (!upload) throw new NotFound(NO_SUCH_UPLOAD);
    const jobHasFile = upload.jobId && (await deps.jobs.get(upload.jobId));
    if (jobHasFile) await uploads.remove(upload._id);
    else await removeUpload(deps, upload);
    log.info({ event: "upload.terminated", uploadId: upload._id, userId: user.id }, "upload terminated");
    return new Response(null, { status: 204 });
  }

  const discovery = () =>
    new Response(null, {
      status: 204,
      headers: { "Tus-Version": TUS_VERSION, "Tus-Extension": TUS_EXTENSIONS, "Tus-Max-Size": String(maxUploadBytes) },
    });

  return new Elysia({ name: "gateway.uploads" })
    .use(bearer(deps.verifier))
    .onRequest(({ request, set }) => {
      if (UPLOADS_PATH.test(request.url)) Object.assign(set.headers, TUS_HEADERS); // problems too
    })
    .options("/uploads", discovery, { detail: uploadDocs.options })
    .options("/uploads/:id", discovery, { detail: uploadDocs.options })
    .guard({ auth: "user-or-key", detail: { security: USER_OR_KEY } }, (app) =>
      app
        .post("/uploads", ({ request, user, set }) => creation(request, user, set), {
          parse: "none",
          detail: uploadDocs.create,
        })
        .head(
          "/uploads/:id",
          async ({ request, params, user }) => {
            checkVersion(request.headers);
            const upload = await uploads.owned(uploadId(params.id), user.id);
            const headers = { ...uploadHeaders(upload), "Upload-Length": String(upload.length) };
            if (upload.metadata) Object.assign(headers, { "Upload-Metadata": upload.metadata });
            return new Response(null, { status: 200, headers: { ...headers, "Cache-Control": "no-store" } });
          },
          { detail: uploadDocs.head },
        )
        .patch("/uploads/:id", ({ request, params, user, set }) => append(request, params.id, user, set), {
          parse: "none",
          detail: uploadDocs.patch,
        })
        .delete(
          "/uploads/:id",
          ({ request, params, user }) => {
            checkVersion(request.headers);
            return terminate(params.id, user);
          },
          { detail: uploadDocs.remove },
        ),
    );
}

const UPLOADS_PATH = /^[a-z]+:\/\/[^/]+\/uploads(?:[/?]|$)/i;
const later = () => new Date(Date.now() + UPLOAD_TTL_MS);
