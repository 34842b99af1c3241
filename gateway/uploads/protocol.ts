// tus 1.0 (https://tus.io/protocols/resumable-upload) as the gateway speaks it: the core
// protocol with the creation, termination and expiration extensions. Here are its
// headers, read and written: what a request must carry (Tus-Resumable, Upload-Length,
// Upload-Offset, the PATCH content type) and Upload-Metadata, whose values carry the
// file's name and the conversion options by their usual names (parsed by gateway/options.ts).
import { cleanFilename } from "../../lib/filenames.ts";
import type { ConversionOptions } from "../../lib/options.ts";
import { HttpProblem, invalidFields, UnsupportedMediaType } from "../../lib/problem.ts";
import { parseOptions } from "../options.ts";

export const TUS_VERSION = "1.0.0";
export const TUS_EXTENSIONS = "creation,termination,expiration";
/** The media type of a PATCH body. */
export const PATCH_TYPE = "application/offset+octet-stream";
/** An upload nobody adds to for this long is removed (the expiration extension's Upload-Expires). */
export const UPLOAD_TTL_MS = 24 * 3_600_000;

/** Headers a browser's script may read from an answer (tus-js-client reads these). */
export const EXPOSED_HEADERS =
  "Location, Upload-Offset, Upload-Length, Upload-Expires, Upload-Metadata, Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size, Job-Id";

/** What every answer of /uploads carries (problems too). */
export const TUS_HEADERS = { "Tus-Resumable": TUS_VERSION, "Access-Control-Expose-Headers": EXPOSED_HEADERS };

/** 412: the client speaks another version of tus (or did not say it speaks tus). */
export function checkVersion(headers: Headers): void {
  const version = headers.get("tus-resumable");
  if (version === TUS_VERSION) return;
  throw new HttpProblem(
    412,
    "Precondition Failed",
    version === null
      ? "send Tus-Resumable: 1.0.0: /uploads speaks tus 1.0"
      : `this server speaks tus ${TUS_VERSION}, not ${version}`,
    {},
    { "Tus-Version": TUS_VERSION },
  );
}

/** 422 naming the header, as every bad field is named. */
const badHeader = (field: string, message: string) => invalidFields([{ field, message }]);

/** A whole number of bytes as a required header gives it: digits only, within what a number holds exactly. */
function byteCount(headers: Headers, field: string, what: string): number {
  const value = headers.get(field)?.trim();
  if (value === undefined) throw badHeader(field, `is required: ${what}`);
  if (!/^\d{1,16}$/.test(value) || !Number.isSafeInteger(Number(value)))
    throw badHeader(field, "must be a whole number of bytes");
  return Number(value);
}

/** POST's Upload-Length: required (this server has no creation-defer-length). */
export function uploadLength(headers: Headers): number {
  if (headers.has("upload-defer-length"))
    throw badHeader("Upload-Defer-Length", "is not supported: send Upload-Length, the file's size in bytes");
  return byteCount(headers, "Upload-Length", "the file's size in bytes");
}

/** PATCH's Upload-Offset: required; where the body's bytes belong. */
export const uploadOffset = (headers: Headers): number =>
  byteCount(headers, "Upload-Offset", "the upload's offset as HEAD answers it");

/** PATCH bodies are `application/offset+octet-stream` and nothing else: 415. */
export function checkPatchType(headers: Headers): void {
  const type = headers.get("content-type")?.split(";")[0]?.trim().toLowerCase();
  if (type !== PATCH_TYPE)
    throw new UnsupportedMediaType(`a PATCH body must be sent as Content-Type: ${PATCH_TYPE} (got ${type ?? "none"})`);
}

/** Declared body length (Content-Length), if the request gives one. */
export function contentLength(headers: Headers): number | undefined {
  const value = Number(headers.get("content-length") ?? Number.NaN);
  return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
}

/** What Upload-Metadata says of the file: its name, its declared type and the conversion options. */
export interface UploadDescription {
  filename: string;
  /** `filetype` as the client declared it ("" if not); what the first bytes show is what counts. */
  declaredType: string;
  options: ConversionOptions;
  /** The metadata as sent, answered again by HEAD (the spec asks for it). */
  metadata: string;
  /** Each pair decoded, for an Idempotency-Key's digest. */
  entries: [string, string][];
}

/** Metadata keys that are not conversion options: the file's name and declared type. */
const FILE_KEYS = ["filename", "filetype"];
const METADATA_FIELD = "Upload-Metadata";
const MAX_METADATA_CHARS = 16 * 1024;

/**
 * Upload-Metadata: comma-separated `key base64(value)` pairs (a key alone means an empty
 * value). A malformed header, or a bad option (the same rules as a form's fields), is 422
 * naming each field.
 */
export function describeUpload(headers: Headers): UploadDescription {
  const metadata = headers.get("upload-metadata")?.trim() ?? "";
  if (metadata.length > MAX_METADATA_CHARS) throw metadataProblem(`must be at most ${MAX_METADATA_CHARS} characters`);
  const entries: [string, string][] = [];
  for (const pair of metadata ? metadata.split(",") : []) {
    const [key, value, ...rest] = pair.trim().split(" ");
    if (!key || rest.length || (value !== undefined && !/^[A-Za-z0-9+/]*={0,2}$/.test(value)))
      throw metadataProblem("must be comma-separated pairs of a key and its value in base64");
    if (entries.some(([seen]) => seen === key)) throw metadataProblem(`gives ${key} more than once`);
    entries.push([key, Buffer.from(value ?? "", "base64").toString("utf8")]);
  }
  const file = Object.fromEntries(entries.filter(([key]) => FILE_KEYS.includes(key)));
  const { options, errors } = parseOptions(entries.filter(([key]) => !FILE_KEYS.includes(key)));
  if (errors.length) throw invalidFields(errors);
  return {
    filename: cleanFilename(file.filename ?? ""),
    declaredType: (file.filetype ?? "").slice(0, 255),
    options,
    metadata,
    entries,
  };
}

const metadataProblem = (message: string) => badHeader(METADATA_FIELD, message);

/** Upload-Expires: an HTTP date (RFC 9110). */
export const httpDate = (date: Date) => date.toUTCString();
