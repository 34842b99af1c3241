// The OpenAPI text of the gateway's job, link, usage and compatibility routes: what each
// does and what each status means there, and the bodies and answers Elysia cannot infer
// (a new job's three ways in, the MP3, the live events, the bare token). lib/openapi.ts
// completes it for every route: each problem answer becomes application/problem+json
// referencing Problem, with an example, and 401 is added wherever credentials are needed.
import type { DocumentDecoration } from "elysia";
import { MAX_LINK_LENGTH } from "../lib/link.ts";
import { ConversionOptions, OPTION_FIELDS, TIMESTAMP_PATTERN } from "../lib/options.ts";
import { IDEMPOTENCY_HEADER, MAX_KEY_LENGTH } from "./idempotency.ts";

/** A module's route docs by name, each checked as Elysia's `detail`. */
export const routeDocs = <K extends string>(docs: Record<K, DocumentDecoration>) => docs;

/** A route's answers by status, each with what it means there (a problem's body is lib/openapi.ts's to add). */
export const answers = (meanings: Record<number, string>) =>
  Object.fromEntries(Object.entries(meanings).map(([status, description]) => [status, { description }]));

/** A binary answer (the MP3, the cover) and the headers it comes with. */
const fileAnswer = (type: string, description: string, headers: Record<string, string>) => ({
  description,
  headers: Object.fromEntries(
    Object.entries(headers).map(([name, about]) => [name, { description: about, schema: { type: "string" as const } }]),
  ),
  content: { [type]: { schema: { type: "string" as const, format: "binary" } } },
});
const FILE_HEADERS = {
  "Accept-Ranges": "`bytes`: ask for part of the file with a Range header",
  ETag: "the file's id, quoted",
  "Content-Length": "the bytes in this answer",
};
const AUDIO_HEADERS = {
  ...FILE_HEADERS,
  "Content-Disposition": "`attachment`, named after the source: `holiday clip.mp3`",
};
const PARTIAL = { "Content-Range": "which bytes of how many: `bytes 0-1023/2886400`" };

/** What a job route answers when the job is not the caller's, or is no more. */
const NOT_FOUND = "no such job among yours (never made, deleted, or expired and removed)";
const STORE_AWAY = "MongoDB or the broker is briefly away: try again after `Retry-After`";

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
const LINK_EXAMPLE = { url: "https://example.com/talks/keynote.mp4", bitrate: 192, start: "1:15", title: "Keynote" };

/** What POST /jobs and POST /upload answer, by status. */
const NEW_JOB_ANSWERS = answers({
  202: "the job, queued: follow it live at `links.events`, or read `links.self` now and then",
  400: "the body could not be read: not valid JSON, or a malformed multipart form",
  413: "the file is larger than MAX_UPLOAD_BYTES, or would take your stored bytes past your storage quota (`quota: storedBytes`, with `limit` and `used`)",
  415: "neither a video nor an audio file (judged by its first bytes), or a content type this route does not take",
  409: "(POST /jobs) the first request with this `Idempotency-Key` is still running, or failed: send it again after `Retry-After`",
  422: "`file` or `url` is missing or invalid, or a conversion option is: `errors` names each field; nothing is stored. Or an `Idempotency-Key` used before with another request",
  429: "you have MAX_ACTIVE_JOBS jobs queued or converting already (`quota: activeJobs`): try again after `Retry-After`",
  503: `${STORE_AWAY}; nothing was stored`,
});

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
        encoding: { file: { contentType: "video/*, audio/*, application/octet-stream" } },
        example: { file: "(the video's bytes)", bitrate: 192, normalize: true },
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
        example: LINK_EXAMPLE,
      },
    },
  },
  responses: NEW_JOB_ANSWERS,
};

/** The SSE events of GET /jobs/:id/events, each named by `event:` with JSON in `data:`. */
const EVENTS = {
  status: {
    description:
      "the job (schema Job, as GET /jobs/:id shows it): sent at once, on every change of status, phase, progress or place in line, and every 15 s while nothing changes; the stream ends after the one that says done or failed",
    data: { $ref: "#/components/schemas/Job" },
  },
  deleted: {
    description: "the job is gone (deleted, or expired and removed): `{id}`; the stream ends",
    data: { $ref: "#/components/schemas/JobDeleted" },
  },
};
const EVENT_EXAMPLE =
  'event: status\nid: 1764590409000\ndata: {"id":"6740c2a1f0e4b3a1c2d3e4f5","status":"converting","phase":"converting","progress":42,…}\n\n';

/** POST /jobs's own header (gateway/idempotency.ts checks it), and what a repeat answers with. */
const IDEMPOTENCY_KEY = {
  name: IDEMPOTENCY_HEADER,
  in: "header",
  required: false,
  description: `Up to ${MAX_KEY_LENGTH} characters of your choosing (a UUID will do). The same key with the same request within 24 h answers the first job again (202, the same body, \`Idempotent-Replayed: true\`) and stores nothing; with a different request it is 422; while the first is still running, 409 with Retry-After.`,
  schema: {
    type: "string" as const,
    minLength: 1,
    maxLength: MAX_KEY_LENGTH,
    examples: ["3f1c9a52-6a1e-4c55-9a0e-2f6d1b7c8e90"],
  },
};
const REPLAYED = {
  "Idempotent-Replayed": {
    description:
      "`true`: the answer to an earlier request with the same Idempotency-Key, given again (nothing new was stored); absent otherwise",
    required: false,
    schema: { type: "string" as const, enum: ["true"] },
  },
};

export const jobDocs = routeDocs({
  create: {
    ...newJobDoc,
    parameters: [...(newJobDoc.parameters ?? []), IDEMPOTENCY_KEY],
    responses: { ...NEW_JOB_ANSWERS, 202: { ...NEW_JOB_ANSWERS[202]!, headers: REPLAYED } },
    tags: ["jobs"],
    summary:
      "Convert a video or audio file: multipart field `file`, the raw file with a video/* or audio/* content type, or JSON {url}; with conversion options",
  },
  list: {
    tags: ["jobs"],
    summary: "Your jobs, newest first",
    description: "A page of at most `limit` jobs; pass its `nextCursor` as `cursor` for the next page.",
    responses: answers({
      200: "a page of your jobs; `nextCursor` while there are more",
      422: "`limit` is not an integer between 1 and 100, or `cursor` is not a job id",
    }),
  },
  get: {
    tags: ["jobs"],
    summary: "One job's status and progress",
    responses: answers({ 200: "the job as it is now", 404: NOT_FOUND }),
  },
  remove: {
    tags: ["jobs"],
    summary: "Delete a job, its video and its MP3",
    description: "Its live event streams end with a `deleted` event; links to its MP3 stop working.",
    responses: answers({ 204: "the job and its files are deleted", 404: NOT_FOUND, 503: STORE_AWAY }),
  },
  retry: {
    tags: ["jobs"],
    summary: "Run a failed job again, with the same video and options: 202 and the job, queued",
    description: "409 unless the job failed; 410 once its video is no longer kept (the job expired): upload it again.",
    responses: answers({
      202: "the job again, queued",
      404: NOT_FOUND,
      409: "the job is not failed (only a failed job runs again)",
      410: "the job expired, or its video is no longer kept: upload the video again",
      429: "you have MAX_ACTIVE_JOBS jobs queued or converting already (`quota: activeJobs`)",
      503: "the job could not be queued right now; it is still failed: try again after `Retry-After`",
    }),
  },
  events: {
    tags: ["jobs"],
    summary: "Server-Sent Events: a `status` event (the job) on each change; ends after done or failed",
    description:
      "Events (`event:` names one, `data:` is JSON on one line, `id:` the job's update time): " +
      "`status` — the job (schema Job), sent at once, on each change, and every 15 s while nothing changes; the stream ends after the one that says done or failed. " +
      "`deleted` — `{id}` (schema JobDeleted): the job is gone; the stream ends. " +
      "The stream also ends when the gateway stops or the job cannot be read: open it again (an EventSource does). " +
      "A user may hold at most MAX_STREAMS_PER_USER streams open on one gateway; past it the answer is 429 " +
      "with Retry-After. Every stream of one job shares one read of it per tick.",
    responses: {
      200: {
        description:
          "the event stream: `status` events (data: Job), and `deleted` (data: JobDeleted) if the job goes away",
        content: {
          "text/event-stream": {
            schema: {
              type: "string",
              description: "`event: status` with `data:` a Job; `event: deleted` with `data:` a JobDeleted",
            },
            example: EVENT_EXAMPLE,
            ...({ "x-events": EVENTS } as object), // each event's data schema, by event name
          },
        },
      },
      ...answers({
        404: NOT_FOUND,
        429: "you hold MAX_STREAMS_PER_USER streams open already: close one, or try again after `Retry-After`",
      }),
    },
  },
  audio: {
    tags: ["jobs"],
    summary: "The MP3 (Range requests supported); 409 until the job is done",
    description:
      "With the owner's bearer token or API key, or without any token through a signed link (`expires` and `sig`, as the ready email " +
      "and POST /jobs/:id/share give them), which works until the job expires or its owner revokes it (DELETE /jobs/:id/share). " +
      "A changed, expired or revoked signed link is 403.",
    responses: {
      200: fileAnswer("audio/mpeg", "the MP3", AUDIO_HEADERS),
      206: fileAnswer("audio/mpeg", "the bytes of the MP3 a Range header asked for", { ...AUDIO_HEADERS, ...PARTIAL }),
      ...answers({
        401: "neither a signed link nor a valid bearer token or API key",
        403: "a signed link that was changed, has expired or was revoked: `errors` names `expires` or `sig`",
        404: NOT_FOUND,
        409: "the job is not done (yet, or it failed: `detail` says why)",
        410: "the job has expired; its MP3 is no longer kept",
        416: "the Range asked for starts past the MP3's end (`Content-Range: bytes */<size>`)",
      }),
    },
  },
  cover: {
    tags: ["jobs"],
    summary: "The MP3's front cover (JPEG), once the converter made one (the job's `links.cover`); 404 without one",
    responses: {
      200: fileAnswer("image/jpeg", "the cover", FILE_HEADERS),
      206: fileAnswer("image/jpeg", "the bytes of the cover a Range header asked for", { ...FILE_HEADERS, ...PARTIAL }),
      ...answers({ 404: `${NOT_FOUND}; or it has no cover`, 416: "the Range asked for starts past the cover's end" }),
    },
  },
  upload: {
    ...newJobDoc,
    tags: ["compatibility"],
    summary: "Same as POST /jobs (the reference flow's multipart `file`)",
  },
  download: {
    tags: ["compatibility"],
    summary: "The MP3 by its file id (owner only), as the ready email names it",
    description: "The same answers as GET /jobs/:id/audio, for the MP3 whose `audio.fileId` is `fid`.",
    responses: {
      200: fileAnswer("audio/mpeg", "the MP3", AUDIO_HEADERS),
      206: fileAnswer("audio/mpeg", "the bytes of the MP3 a Range header asked for", { ...AUDIO_HEADERS, ...PARTIAL }),
      ...answers({
        404: "no MP3 of yours has this file id",
        422: "`fid` is missing",
        410: "the job has expired; its MP3 is no longer kept",
        416: "the Range asked for starts past the MP3's end",
      }),
    },
  },
});

export const linkDocs = routeDocs({
  share: {
    tags: ["jobs"],
    summary: "A link to a done job's MP3 that works without logging in, until the job expires: {url, expiresAt}",
    description:
      "Anyone holding the link can download the MP3 (GET, Range supported) until `expiresAt`, or until you revoke every link with DELETE. 409 unless the job is done; 410 once it expired.",
    responses: answers({
      200: "the link and when it stops working",
      404: NOT_FOUND,
      409: "the job is not done: only a done job's MP3 can be shared",
      410: "the job has expired; its MP3 is no longer kept",
    }),
  },
  unshare: {
    tags: ["jobs"],
    summary: "Revoke every link to the job's MP3 made so far (shared, or in the ready email): 204",
    responses: answers({ 204: "every link made so far is revoked; new ones can be made", 404: NOT_FOUND }),
  },
});

export const accountDocs = routeDocs({
  usage: {
    tags: ["account"],
    summary: "Your quotas and what you use of them: jobs under way and bytes stored",
    description:
      "A new job past `limits.activeJobs` is 429 with Retry-After; an upload that would take `storedBytes` past `limits.storedBytes` is 413 naming the quota. MP3s, written after a job is taken, can take `storedBytes` past the limit by their size.",
    responses: answers({ 200: "your usage and your limits", 503: STORE_AWAY }),
  },
});
