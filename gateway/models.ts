// The gateway's API models: TypeBox schemas that validate requests and answers and
// give the handlers (and, by `import type`, the web page) their types. `gatewayModels`
// registers the ones several routes share by name, so each is written once in the
// OpenAPI document (components.schemas) and routes refer to it by that name. Each
// route's OpenAPI text is here too, next to the models it describes.
import { type DocumentDecoration, Elysia, t } from "elysia";
import { JOB_PHASES, JOB_STATUSES } from "../lib/jobs.ts";
import { MAX_LINK_LENGTH } from "../lib/link.ts";
import { Problem } from "../lib/problem.ts";

function copy<T extends object>(schema: T): T {
  return { ...schema };
}

// ── jobs ────────────────────────────────────────────────────────────────────
export const JobView = t.Object({
  id: t.String(),
  status: t.UnionEnum(JOB_STATUSES),
  phase: t.Optional(
    t.UnionEnum(JOB_PHASES, {
      description:
        "while converting (and after, the last one): `downloading` a link's video, then `converting` it; absent while queued",
    }),
  ),
  progress: t.Integer({
    minimum: 0,
    maximum: 100,
    description:
      "the whole job: for a link, downloading fills 0-50 (when the server tells the size) and converting 50-100; for an upload, converting fills 0-100",
  }),
  error: t.Optional(t.String({ description: "why the job failed, in words for a person" })),
  source: t.Object({
    kind: t.Union([t.Literal("upload"), t.Literal("url")]),
    filename: t.String(),
    url: t.Optional(t.String({ description: "the link the video comes from (kind url)" })),
    bytes: t.Integer({ description: "the video's size; 0 for a link until it is downloaded" }),
    contentType: t.String(),
  }),
  audio: t.Optional(
    t.Object({
      bytes: t.Integer(),
      durationSec: t.Number(),
      fileId: t.String({ description: "the MP3's file id, for GET /download?fid=" }),
    }),
  ),
  createdAt: t.String({ format: "date-time" }),
  updatedAt: t.String({ format: "date-time" }),
  expiresAt: t.Optional(
    t.String({
      format: "date-time",
      description: "once finished: when the job, its video and its MP3 are removed (RETENTION_HOURS after it finished)",
    }),
  ),
  links: t.Object({
    self: t.String(),
    events: t.String(),
    audio: t.String(),
    retry: t.Optional(t.String({ description: "a failed job: POST here to run it again" })),
  }),
});
export type JobView = typeof JobView.static;

export const JobPage = t.Object({
  items: t.Array(JobView),
  nextCursor: t.Optional(t.String({ description: "pass as `cursor` for the next page" })),
});
export type JobPage = typeof JobPage.static;

export const JobId = t.Object({ id: t.String() });
export const NewJobQuery = t.Object({
  filename: t.Optional(t.String({ maxLength: 255, description: "original name, for a raw video body" })),
});
export const JobListQuery = t.Object({
  limit: t.Integer({ minimum: 1, maximum: 100, default: 20 }),
  cursor: t.Optional(t.String()),
});
export const DownloadQuery = t.Object({ fid: t.String({ description: "the MP3's file id" }) });

// ── accounts ────────────────────────────────────────────────────────────────
export const Credentials = t.Object({ email: t.String(), password: t.String() });
export const Account = t.Object({ id: t.Integer(), email: t.String() });
export const Token = t.Object({ token: t.String(), expiresAt: t.String({ format: "date-time" }) });
export const UsageView = t.Object({
  activeJobs: t.Integer({ minimum: 0, description: "your jobs queued or converting now" }),
  storedBytes: t.Integer({ minimum: 0, description: "bytes of your videos and MP3s stored now" }),
  limits: t.Object({
    activeJobs: t.Integer({
      description: "MAX_ACTIVE_JOBS: jobs queued or converting at once; a new job past it is 429 with Retry-After",
    }),
    storedBytes: t.Integer({
      description: "USER_STORAGE_BYTES: bytes of videos and MP3s you may store; an upload that would pass it is 413",
    }),
  }),
});
export type UsageView = typeof UsageView.static;

/**
 * The shared models by name, as the OpenAPI document calls them. Each is registered as a
 * copy: Elysia gives a registered schema an `$id`, and the originals are embedded
 * elsewhere (JobPage holds JobView; every service answers Problem), where a second
 * schema with the same `$id` would make the document invalid.
 */
export const gatewayModels = new Elysia({ name: "gateway.models" }).model({
  Job: copy(JobView),
  JobPage: copy(JobPage),
  Credentials: copy(Credentials),
  Account: copy(Account),
  Token: copy(Token),
  Usage: copy(UsageView),
  Problem: copy(Problem),
});

// ── OpenAPI text ────────────────────────────────────────────────────────────
const routeDocs = <K extends string>(docs: Record<K, DocumentDecoration>) => docs;
export const jobDocs = routeDocs({
  create: {
    tags: ["jobs"],
    summary:
      "Convert a video: multipart field `file`, the raw video with a video/* content type, or JSON {url} of a video to download",
    description:
      "A link (http or https, no credentials, at most 2048 characters) is downloaded by the converter: the job shows `phase: downloading` first. " +
      "A malformed link, or one to a literal private address, is 422 naming the field `url`; a link that fails later fails the job with the reason in `error`. " +
      "Quotas (GET /account/usage): a job past your jobs under way at once is 429 with Retry-After (problem member `quota: activeJobs`); " +
      "a video that would take your stored bytes past your storage quota is 413 (`quota: storedBytes`, with `limit` and `used`), refused before its body is read when Content-Length already says so.",
    requestBody: {
      content: {
        "multipart/form-data": {
          schema: {
            type: "object",
            properties: { file: { type: "string", format: "binary" } },
            required: ["file"],
          },
        },
        "video/*": { schema: { type: "string", format: "binary" } },
        "application/json": {
          schema: {
            type: "object",
            properties: {
              url: {
                type: "string",
                format: "uri",
                maxLength: MAX_LINK_LENGTH,
                description: "an http(s) link to a video file",
              },
            },
            required: ["url"],
          },
        },
      },
    },
  },
  list: { tags: ["jobs"], summary: "Your jobs, newest first" },
  get: { tags: ["jobs"], summary: "One job's status and progress" },
  remove: { tags: ["jobs"], summary: "Delete a job, its video and its MP3" },
  retry: {
    tags: ["jobs"],
    summary: "Run a failed job again, with the same video and options: 202 and the job, queued",
    description: "409 unless the job failed; 410 once its video is no longer kept (the job expired): upload it again.",
  },
  events: {
    tags: ["jobs"],
    summary: "Server-Sent Events: a `status` event (the job) on each change; ends after done or failed",
    description:
      "A user may hold at most MAX_STREAMS_PER_USER streams open on one gateway; past it the answer is 429 " +
      "with Retry-After. Every stream of one job shares one read of it per tick.",
    responses: {
      200: { description: "text/event-stream", content: { "text/event-stream": { schema: { type: "string" } } } },
      429: { description: "too many open streams (problem+json, Retry-After)" },
    },
  },
  audio: {
    tags: ["jobs"],
    summary: "The MP3 (Range requests supported); 409 until the job is done",
    responses: {
      200: { description: "audio/mpeg" },
      206: { description: "partial audio/mpeg" },
      409: { description: "not done yet" },
    },
  },
  upload: { tags: ["compatibility"], summary: "Same as POST /jobs (multipart `file`)" },
  download: { tags: ["compatibility"], summary: "The MP3 by its file id (owner only)" },
});

export const accountDocs = routeDocs({
  usage: {
    tags: ["account"],
    summary: "Your quotas and what you use of them: jobs under way and bytes stored",
    description:
      "A new job past `limits.activeJobs` is 429 with Retry-After; an upload that would take `storedBytes` past `limits.storedBytes` is 413 naming the quota. MP3s, written after a job is taken, can take `storedBytes` past the limit by their size.",
  },
});

export const authDocs = routeDocs({
  register: { tags: ["auth"], summary: "Create an account" },
  login: {
    tags: ["auth"],
    summary: "Log in with JSON or HTTP Basic; answers a bearer token",
    security: [{}, { basic: [] }],
  },
  basicLogin: {
    tags: ["compatibility"],
    summary: "HTTP Basic login answering the bare token as text",
    security: [{ basic: [] }],
  },
});
