// The gateway's API models: TypeBox schemas that validate requests and answers and
// give the handlers (and, by `import type`, the web page) their types. `gatewayModels`
// registers the ones several routes share by name, so each is written once in the
// OpenAPI document (components.schemas) and routes refer to it by that name. Each model
// carries an example, shown with every body and answer it describes; the routes' OpenAPI
// text is gateway/route-docs.ts.
import { Elysia, t } from "elysia";
import { Credentials } from "../lib/account-models.ts";
import { JOB_PHASES, JOB_STATUSES } from "../lib/jobs.ts";
import { registered } from "../lib/openapi.ts";
import { AudioTrack, ConversionOptions } from "../lib/options.ts";
import { Problem } from "../lib/problem.ts";

// ── jobs ────────────────────────────────────────────────────────────────────
const JOB_ID = "6740c2a1f0e4b3a1c2d3e4f5";
/** A done job, as the example of every answer that shows a job. */
const DONE_JOB = {
  id: JOB_ID,
  status: "done",
  phase: "converting",
  progress: 100,
  source: { kind: "upload", filename: "holiday clip.mp4", bytes: 48_213_112, contentType: "video/mp4" },
  options: { normalize: false, quality: 4, title: "holiday clip", cover: "frame" },
  audio: { bytes: 2_886_400, durationSec: 180.4, fileId: "6740c2b7f0e4b3a1c2d3e4f6" },
  createdAt: "2026-12-01T12:00:00.000Z",
  updatedAt: "2026-12-01T12:00:09.000Z",
  expiresAt: "2026-12-08T12:00:09.000Z",
  links: {
    self: `/jobs/${JOB_ID}`,
    events: `/jobs/${JOB_ID}/events`,
    audio: `/jobs/${JOB_ID}/audio`,
    cover: `/jobs/${JOB_ID}/cover`,
    share: `/jobs/${JOB_ID}/share`,
  },
};

// UnionEnum's own default (its first value) would document a default for what the server always sends.
export const JobView = t.Object(
  {
    id: t.String(),
    status: t.UnionEnum(JOB_STATUSES, { default: undefined }),
    phase: t.Optional(
      t.UnionEnum(JOB_PHASES, {
        default: undefined,
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
          description:
            "the source's audio tracks, once the converter has probed it; the option `track` picks by `index`",
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
        description:
          "once finished: when the job, its video and its MP3 are removed (RETENTION_HOURS after it finished)",
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
  },
  {
    description: "a conversion job: its status and progress, its source, its options, and its MP3 once done",
    examples: [DONE_JOB],
  },
);
export type JobView = typeof JobView.static;

/** The `deleted` event of GET /jobs/:id/events: the job is gone (deleted, or expired and removed). */
export const JobDeleted = t.Object(
  { id: t.String({ description: "the job's id, as the stream was opened with it" }) },
  { examples: [{ id: JOB_ID }] },
);

/** POST /jobs/:id/share: a signed link to the MP3 (lib/signed-links.ts). */
export const ShareLink = t.Object(
  {
    url: t.String({
      format: "uri",
      description: "GET it without a token for the MP3 (Range supported), until expiresAt or until revoked",
    }),
    expiresAt: t.String({ format: "date-time", description: "when the link stops working: when the job expires" }),
  },
  {
    examples: [
      {
        url: `https://m3dio.example/jobs/${JOB_ID}/audio?expires=1796731209&sig=3q2-7wAAAAB0ZXN0c2lnbmF0dXJlLWV4YW1wbGU`,
        expiresAt: "2026-12-08T12:00:09.000Z",
      },
    ],
  },
);
export type ShareLink = typeof ShareLink.static;

/** GET /jobs/:id/audio without a bearer token: the signed link's parameters. */
export const SignedAudioQuery = t.Object({
  expires: t.Optional(t.String({ description: "a signed link's expiry (unix seconds), as the link carries it" })),
  sig: t.Optional(t.String({ description: "a signed link's signature (base64url), as the link carries it" })),
});

export const JobPage = t.Object(
  {
    items: t.Array(JobView),
    nextCursor: t.Optional(t.String({ description: "pass as `cursor` for the next page" })),
  },
  { description: "a page of your jobs, newest first", examples: [{ items: [DONE_JOB], nextCursor: JOB_ID }] },
);
export type JobPage = typeof JobPage.static;

export const JobId = t.Object({ id: t.String() });
export const JobListQuery = t.Object({
  limit: t.Integer({ minimum: 1, maximum: 100, default: 20, description: "jobs per page" }),
  cursor: t.Optional(t.String({ description: "the `nextCursor` of the page before" })),
});
export const DownloadQuery = t.Object({ fid: t.String({ description: "the MP3's file id" }) });

// ── accounts ────────────────────────────────────────────────────────────────
export const UsageView = t.Object(
  {
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
  },
  {
    description: "your quotas and what you use of them",
    examples: [{ activeJobs: 1, storedBytes: 51_099_512, limits: { activeJobs: 5, storedBytes: 2_147_483_648 } }],
  },
);
export type UsageView = typeof UsageView.static;

/**
 * The shared models by name, as the OpenAPI document calls them. Each is registered as a
 * copy (lib/openapi.ts `registered`): Elysia gives a registered schema an `$id`, and the
 * originals are embedded elsewhere (JobPage holds JobView; every service answers Problem),
 * where a second schema with the same `$id` would make the document invalid; and Elysia
 * closes a registered schema in place when a route first uses it, which the document undoes.
 */
export const gatewayModels = new Elysia({ name: "gateway.models" }).model({
  Job: registered(JobView),
  JobPage: registered(JobPage),
  JobDeleted: registered(JobDeleted),
  Credentials: registered(Credentials),
  Usage: registered(UsageView),
  ConversionOptions: registered(ConversionOptions),
  ShareLink: registered(ShareLink),
  Problem: registered(Problem),
});
