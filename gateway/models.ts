// The gateway's API models: TypeBox schemas that validate requests and answers and
// give the handlers (and, by `import type`, the web page) their types. `gatewayModels`
// registers the ones several routes share by name, so each is written once in the
// OpenAPI document (components.schemas) and routes refer to it by that name. Each
// route's OpenAPI text is here too, next to the models it describes.
import { type DocumentDecoration, Elysia, t } from "elysia";
import { JOB_PHASES, JOB_STATUSES } from "../lib/jobs.ts";
import { MAX_LINK_LENGTH } from "../lib/link.ts";
import { AudioTrack, ConversionOptions, OPTION_FIELDS, TIMESTAMP_PATTERN } from "../lib/options.ts";
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
  queuePosition: t.Optional(
    t.Integer({
      minimum: 1,
      description:
        "while queued: the job's place in line among every user's queued jobs, 1 for the next to be converted",
    }),
  ),
  source: t.Object({
    kind: t.Union([t.Literal("upload"), t.Literal("url")]),
    filename: t.String({ description: "the name as it was typed, cleaned of invisible and control characters" }),
    url: t.Optional(t.String({ description: "the link the video comes from (kind url)" })),
    bytes: t.Integer({ description: "the video's size; 0 for a link until it is downloaded" }),
    contentType: t.String({
      description:
        "what the file's first bytes show it is (a video/* or audio/* type), whatever was declared; application/octet-stream for a link until it is downloaded",
    }),
    audioTracks: t.Optional(
      t.Array(AudioTrack, {
        description: "the source's audio tracks, once the converter has probed it; the option `track` picks by `index`",
      }),
    ),
  }),
  options: t.Object(ConversionOptions.properties, {
    additionalProperties: false,
    description:
      "the conversion options as applied (schema ConversionOptions): what you chose, with the defaults filled in (the gateway's when queued; the converter's full set once it starts)",
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
    cover: t.Optional(t.String({ description: "the MP3's front cover (image/jpeg), once the converter made one" })),
    retry: t.Optional(t.String({ description: "a failed job: POST here to run it again" })),
    share: t.Optional(
      t.String({
        description:
          "a done job: POST here for a link to its MP3 that works without logging in until the job expires; DELETE here revokes every such link",
      }),
    ),
  }),
});
export type JobView = typeof JobView.static;

/** POST /jobs/:id/share: a signed link to the MP3 (lib/signed-links.ts). */
export const ShareLink = t.Object({
  url: t.String({
    format: "uri",
    description: "GET it without a token for the MP3 (Range supported), until expiresAt or until revoked",
  }),
  expiresAt: t.String({ format: "date-time", description: "when the link stops working: when the job expires" }),
});
export type ShareLink = typeof ShareLink.static;

/** GET /jobs/:id/audio without a bearer token: the signed link's parameters. */
export const SignedAudioQuery = t.Object({
  expires: t.Optional(t.String({ description: "a signed link's expiry (unix seconds), as the link carries it" })),
  sig: t.Optional(t.String({ description: "a signed link's signature (base64url), as the link carries it" })),
});

export const JobPage = t.Object({
  items: t.Array(JobView),
  nextCursor: t.Optional(t.String({ description: "pass as `cursor` for the next page" })),
});
export type JobPage = typeof JobPage.static;

export const JobId = t.Object({ id: t.String() });
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
  ConversionOptions: copy(ConversionOptions),
  ShareLink: copy(ShareLink),
  Problem: copy(Problem),
});

// ── OpenAPI text ────────────────────────────────────────────────────────────
const routeDocs = <K extends string>(docs: Record<K, DocumentDecoration>) => docs;

/**
 * Each option as a client may send it: the stored model's schema (components.schemas.
 * ConversionOptions), except that trim points may also be timestamps and `normalize` text.
 * Forms and queries carry text; the gateway parses it (gateway/options.ts).
 */
const OPTION_INPUTS: Record<string, object> = (() => {
  const { start, end, normalize } = ConversionOptions.properties;
  const timestamp = { type: "string", pattern: TIMESTAMP_PATTERN, examples: ["1:15", "1:02:03.5"] };
  const asSent: Record<string, object> = {
    start: { anyOf: [{ ...start }, timestamp], description: `${start.description}; or [hh:]mm:ss[.fff]` },
    end: { anyOf: [{ ...end }, timestamp], description: `${end.description}; or [hh:]mm:ss[.fff]` },
    normalize: {
      anyOf: [{ ...normalize }, { type: "string", enum: ["true", "false", "1", "0"] }],
      description: normalize.description,
    },
  };
  return Object.fromEntries(OPTION_FIELDS.map((name) => [name, asSent[name] ?? ConversionOptions.properties[name]]));
})();

const OPTIONS_TEXT =
  "Conversion options (schema ConversionOptions), all optional, on every way in: form fields beside `file` (before or after it), " +
  "JSON fields beside `url`, or query parameters with a raw body. A bad value, an unknown field, a field given twice, " +
  "`quality` with `bitrate`, or `end` not after `start` is 422 naming each field in `errors`, and nothing is stored. " +
  "An empty value is the same as leaving the field out.";

const rawBody = { schema: { type: "string" as const, format: "binary" } };

/** POST /jobs and its alias POST /upload take the same bodies, parameters and options. */
const newJobDoc: DocumentDecoration = {
  description:
    `${OPTIONS_TEXT} ` +
    "A video or an audio file (M4A, MP3, WAV, FLAC, Ogg, Opus) is judged by its first bytes, not its name or declared type: anything else is 415. " +
    "A link (http or https, no credentials, at most 2048 characters) is downloaded by the converter: the job shows `phase: downloading` first. " +
    "A malformed link, or one to a literal private address, is 422 naming the field `url`; a link that fails later fails the job with the reason in `error`. " +
    "Quotas (GET /account/usage): a job past your jobs under way at once is 429 with Retry-After (problem member `quota: activeJobs`); " +
    "a file that would take your stored bytes past your storage quota is 413 (`quota: storedBytes`, with `limit` and `used`), refused before its body is read when Content-Length already says so.",
  parameters: [
    {
      name: "filename",
      in: "query",
      required: false,
      description:
        "a raw body's name as typed (else its Content-Disposition filename, else an X-Filename header, percent-encoded)",
      schema: { type: "string" },
    },
    ...Object.entries(OPTION_INPUTS).map(([name, schema]) => ({
      name,
      in: "query",
      required: false,
      description: "a conversion option (with a raw body; see ConversionOptions)",
      schema,
    })),
  ],
  requestBody: {
    required: true,
    content: {
      "multipart/form-data": {
        schema: {
          type: "object",
          properties: {
            file: { type: "string", format: "binary", description: "the video or audio file" },
            ...OPTION_INPUTS,
          },
          required: ["file"],
        },
      },
      "video/*": rawBody,
      "audio/*": rawBody,
      "application/json": {
        schema: {
          type: "object",
          properties: {
            url: {
              type: "string",
              format: "uri",
              maxLength: MAX_LINK_LENGTH,
              description: "an http(s) link to a video or audio file, or to a video page",
            },
            ...OPTION_INPUTS,
          },
          required: ["url"],
          additionalProperties: false,
        },
      },
    },
  },
};

export const jobDocs = routeDocs({
  create: {
    ...newJobDoc,
    tags: ["jobs"],
    summary:
      "Convert a video or audio file: multipart field `file`, the raw file with a video/* or audio/* content type, or JSON {url}; with conversion options",
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
    description:
      "With the owner's bearer token, or without any token through a signed link (`expires` and `sig`, as the ready email " +
      "and POST /jobs/:id/share give them), which works until the job expires or its owner revokes it (DELETE /jobs/:id/share). " +
      "A changed, expired or revoked signed link is 403.",
    security: [{ bearer: [] }, {}],
    responses: {
      200: { description: "audio/mpeg" },
      206: { description: "partial audio/mpeg" },
      403: { description: "a signed link that was changed, has expired or was revoked (problem+json)" },
      409: { description: "not done yet" },
      410: { description: "the job has expired; its MP3 is no longer kept" },
    },
  },
  cover: {
    tags: ["jobs"],
    summary: "The MP3's front cover (JPEG), once the converter made one (the job's `links.cover`); 404 without one",
    responses: {
      200: { description: "image/jpeg", content: { "image/jpeg": { schema: { type: "string", format: "binary" } } } },
      404: { description: "no such job, or it has no cover (problem+json)" },
    },
  },
  upload: {
    ...newJobDoc,
    tags: ["compatibility"],
    summary: "Same as POST /jobs (the reference flow's multipart `file`)",
  },
  download: { tags: ["compatibility"], summary: "The MP3 by its file id (owner only)" },
});

export const linkDocs = routeDocs({
  share: {
    tags: ["jobs"],
    summary: "A link to a done job's MP3 that works without logging in, until the job expires: {url, expiresAt}",
    description:
      "Anyone holding the link can download the MP3 (GET, Range supported) until `expiresAt`, or until you revoke every link with DELETE. 409 unless the job is done; 410 once it expired.",
  },
  unshare: {
    tags: ["jobs"],
    summary: "Revoke every link to the job's MP3 made so far (shared, or in the ready email): 204",
  },
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
