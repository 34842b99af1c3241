// The OpenAPI text of /uploads (gateway/uploads/routes.ts): the tus headers each request
// sends and each answer carries, and what every status means there.
import type { DocumentDecoration } from "elysia";
import { OPTION_FIELDS } from "../../lib/options.ts";
import { PATCH_TYPE, TUS_EXTENSIONS, TUS_VERSION } from "./protocol.ts";

const text = { type: "string" as const };
const header = (name: string, description: string, example: string, required = true) => ({
  name,
  in: "header" as const,
  required,
  description,
  schema: text,
  example,
});
const answerHeaders = (headers: Record<string, string>) =>
  Object.fromEntries(Object.entries(headers).map(([name, description]) => [name, { description, schema: text }]));
const answer = (description: string, headers: Record<string, string> = {}) => ({
  description,
  ...(Object.keys(headers).length ? { headers: answerHeaders(headers) } : {}),
});

const TUS_RESUMABLE = header("Tus-Resumable", `the tus version spoken: \`${TUS_VERSION}\``, TUS_VERSION);
const RESUMABLE_ANSWER = { "Tus-Resumable": `\`${TUS_VERSION}\`` };
const EXPIRES = "when the upload is removed unless more bytes arrive (24 hours after the last did), an HTTP date";
const NOT_FOUND = "no such upload among yours (never made, removed, or expired and swept)";
const GONE = "the upload expired (24 hours without new bytes) and is being removed: start again";
const WRONG_VERSION = "no Tus-Resumable, or another version than 1.0.0 (the answer names it in Tus-Version)";
const STORE_AWAY = "MongoDB or the broker is briefly away: try again after `Retry-After`";

export const uploadDocs = {
  options: {
    tags: ["uploads"],
    summary: "What this tus server speaks: version, extensions, largest upload",
    description: "No credentials needed (a browser's CORS preflight sends none).",
    responses: {
      204: answer("the server's tus capabilities", {
        "Tus-Version": `\`${TUS_VERSION}\``,
        "Tus-Extension": `\`${TUS_EXTENSIONS}\``,
        "Tus-Max-Size": "MAX_UPLOAD_BYTES, in bytes",
        ...RESUMABLE_ANSWER,
      }),
    },
  },
  create: {
    tags: ["uploads"],
    summary: "Start a resumable upload (tus creation): 201 with its URL in Location",
    description:
      "tus 1.0 (https://tus.io/protocols/resumable-upload) with the creation, termination and expiration extensions; any tus client works " +
      "(tus-js-client, Uppy, tusd's tus clients, or curl). Send the file's size as Upload-Length and, in Upload-Metadata " +
      "(comma-separated `key base64(value)` pairs), its `filename`, optionally `filetype`, and any conversion option by its name " +
      `(${OPTION_FIELDS.join(", ")}: the same values as a form's fields). Then PATCH the bytes to Location; the PATCH that stores ` +
      "the last byte makes the job and answers its id in Job-Id. Checked now, before a byte is sent: the size (MAX_UPLOAD_BYTES), " +
      "your storage quota with what your other unfinished uploads will need, your jobs under way (MAX_ACTIVE_JOBS), and at most " +
      "MAX_ACTIVE_JOBS unfinished uploads at once. With Idempotency-Key, the same key and the same headers within 24 h answer the same upload.",
    parameters: [
      TUS_RESUMABLE,
      header("Upload-Length", "the file's size in bytes", "734003200"),
      header(
        "Upload-Metadata",
        "comma-separated `key base64(value)`: `filename`, `filetype`, and conversion options",
        "filename aG9saWRheS5tcDQ=,bitrate MTky",
        false,
      ),
      header(
        "Idempotency-Key",
        "up to 255 characters of your choosing: the same upload for a repeat",
        "3f1c9a52",
        false,
      ),
    ],
    responses: {
      201: answer("the upload is made: PATCH its bytes to Location", {
        Location: "the upload's URL: `/uploads/<id>`",
        "Upload-Expires": EXPIRES,
        ...RESUMABLE_ANSWER,
      }),
      400: answer("the request has a body: send the bytes with PATCH"),
      409: answer("the first request with this Idempotency-Key is still running, or failed: send it again"),
      412: answer(WRONG_VERSION),
      413: answer(
        "Upload-Length is over MAX_UPLOAD_BYTES (named in the detail), or the file would take your stored bytes past your storage quota (`quota: storedBytes`)",
      ),
      415: answer("Upload-Length is 0: an empty file is no video"),
      422: answer(
        "Upload-Length is missing or not a number of bytes, Upload-Defer-Length was sent, or Upload-Metadata is malformed or names an unknown option or a bad value: `errors` names each field; nothing is stored",
      ),
      429: answer(
        "MAX_ACTIVE_JOBS jobs under way, or as many unfinished uploads (`quota: activeJobs`): try again after `Retry-After`",
        { "Retry-After": "seconds" },
      ),
      503: answer(STORE_AWAY, { "Retry-After": "seconds" }),
    },
  },
  head: {
    tags: ["uploads"],
    summary: "How much of the upload is stored: Upload-Offset (and Job-Id once its job is made)",
    description:
      "Resume by PATCHing from Upload-Offset. Upload-Offset equal to Upload-Length with no Job-Id: the bytes are all stored but " +
      "the job could not be made then (429 or 503): PATCH an empty body at that offset to make it.",
    parameters: [TUS_RESUMABLE],
    responses: {
      200: answer("the upload as stored now", {
        "Upload-Offset": "bytes stored",
        "Upload-Length": "the file's size",
        "Upload-Metadata": "as sent at creation",
        "Upload-Expires": `${EXPIRES}; absent once every byte is stored`,
        "Job-Id": "the job the upload became, once it is made",
        "Cache-Control": "`no-store`",
        ...RESUMABLE_ANSWER,
      }),
      404: answer(NOT_FOUND),
      410: answer(GONE),
      412: answer(WRONG_VERSION),
    },
  },
  patch: {
    tags: ["uploads"],
    summary: "Add bytes at Upload-Offset; the last byte makes the job (Job-Id)",
    description:
      `The body (\`Content-Type: ${PATCH_TYPE}\`) is the file's bytes from Upload-Offset on, of any length up to what is left. ` +
      "Bytes are stored as they arrive: if the connection drops, HEAD says how far they got. The first 4 KB are checked to be a " +
      "video or an audio file as soon as they arrive: otherwise 415 and the upload is removed. Only one request writes at a time.",
    parameters: [
      TUS_RESUMABLE,
      header("Upload-Offset", "where the body's bytes belong: the offset HEAD answered", "8388608"),
      header("Content-Type", `\`${PATCH_TYPE}\``, PATCH_TYPE),
    ],
    requestBody: {
      required: true,
      content: { [PATCH_TYPE]: { schema: { type: "string", format: "binary" }, example: "(the file's next bytes)" } },
    },
    responses: {
      204: answer("the bytes are stored", {
        "Upload-Offset": "bytes stored now",
        "Upload-Expires": `${EXPIRES}; absent once every byte is stored`,
        "Job-Id": "with the last byte: the id of the job made (GET /jobs/{id})",
        ...RESUMABLE_ANSWER,
      }),
      404: answer(NOT_FOUND),
      409: answer(
        "Upload-Offset is not the upload's offset (HEAD it and send from there), or another request took over",
      ),
      410: answer(GONE),
      412: answer(WRONG_VERSION),
      413: answer(
        "the body runs past Upload-Length, or (with the last byte) your stored bytes would pass your storage quota: the upload is removed",
      ),
      415: answer(
        `the body is not ${PATCH_TYPE}, or the file's first bytes are not a video or an audio file (the upload is removed)`,
      ),
      422: answer("Upload-Offset is missing or not a number of bytes (`errors` names it)"),
      423: answer("another request is writing to this upload; it is asked to stop: HEAD again shortly", {
        "Retry-After": "seconds",
      }),
      429: answer(
        "(the last byte) MAX_ACTIVE_JOBS jobs are under way: the bytes are kept; PATCH an empty body at the end after `Retry-After`",
        { "Retry-After": "seconds" },
      ),
      503: answer(`${STORE_AWAY}; stored bytes are kept`, { "Retry-After": "seconds" }),
    },
  },
  remove: {
    tags: ["uploads"],
    summary: "Stop an upload and remove its bytes (tus termination)",
    description:
      "An upload whose job is made is only forgotten: the job keeps its file (DELETE /jobs/{id} removes it).",
    parameters: [TUS_RESUMABLE],
    responses: {
      204: answer("the upload and its bytes are gone", RESUMABLE_ANSWER),
      404: answer(NOT_FOUND),
      412: answer(WRONG_VERSION),
      503: answer(STORE_AWAY, { "Retry-After": "seconds" }),
    },
  },
} satisfies Record<string, DocumentDecoration>;
