// What a new-job request asks for, as one SHA-256: the way it came (form, raw body, JSON),
// its query, its fields or JSON body, the file's name and type, and the file's bytes,
// hashed as they stream past (nothing is held). Two requests with the same digest ask for
// the same job, however they were framed: a multipart boundary, the order of the fields
// or of the JSON's keys make no difference. The intake (gateway/intake.ts) feeds a digest
// while it stores an upload; a repeat of an Idempotency-Key is only read and digested
// here (`digestOnly`), never stored (gateway/idempotency.ts).
import { createHash } from "node:crypto";
import { limitedJson } from "../lib/json.ts";
import { collectEvery } from "../lib/memory.ts";
import { BadMultipart, FILE_PART, type MultipartField, readMultipartFile } from "../lib/multipart.ts";
import { ContentTooLarge, Unprocessable, UnsupportedMediaType } from "../lib/problem.ts";
import { bodyPieces, formatBytes, TooLarge } from "../lib/upload.ts";
import { rawBodyFilename } from "./upload-names.ts";

type Entries = [string, string][];

/** A request's digest in the making: `describe` once with what the request says, `bytes()` in the file's path. */
export function requestDigest() {
  const fileHash = createHash("sha256");
  let hashedBytes = false;
  let description: unknown;
  return {
    /** Hashes the file's bytes, given piece by piece as they pass. */
    bytes(): (piece: Uint8Array) => void {
      hashedBytes = true;
      return (piece) => fileHash.update(piece);
    },
    /** What the request says besides its file's bytes (a form's fields, a raw body's type, a JSON body). */
    describe(what: Description): void {
      description = what;
    },
    /** The digest: hex SHA-256 of the description, in canonical JSON, and of the file's bytes. */
    value(): string {
      const bytes = hashedBytes ? fileHash.digest("hex") : null;
      return createHash("sha256")
        .update(canonicalJson({ request: description, bytes }))
        .digest("hex");
    },
  };
}
export type RequestDigest = ReturnType<typeof requestDigest>;

export type Description =
  | { way: "form"; query: Entries; fields: Entries; filename: string }
  | { way: "raw"; query: Entries; type: string; filename: string }
  | { way: "json"; query: Entries; body: unknown }
  | { way: "tus"; length: string | null; metadata: Entries };

const sorted = (entries: Entries): Entries =>
  [...entries].sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0));

/** A multipart upload: its query, every field but the file (in any order), and the file's name as sent. */
export const formDescription = (query: Entries, fields: MultipartField[], filename: string): Description => ({
  way: "form",
  query: sorted(query),
  fields: sorted(fields.map(([name, value]) => [name, value === FILE_PART ? "(a file)" : value])),
  filename,
});

/** A raw body: its query, its media type (without parameters) and the name it gives itself. */
export const rawDescription = (query: Entries, type: string, request: Request): Description => ({
  way: "raw",
  query: sorted(query),
  type: type.split(";")[0]!.trim().toLowerCase(),
  filename: rawBodyFilename(request, query.find(([name]) => name === "filename")?.[1]),
});

/** A tus creation (POST /uploads: gateway/uploads/): its Upload-Length and its metadata, decoded, in any order. */
export const tusDescription = (length: string | null, metadata: Entries): Description => ({
  way: "tus",
  length,
  metadata: sorted(metadata),
});

/** A JSON body (a link and its options) and the query. */
export const jsonDescription = (query: Entries, body: unknown): Description => ({
  way: "json",
  query: sorted(query),
  body,
});

/** JSON with every object's keys in order, so `{a, b}` and `{b, a}` read the same. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`).join(",")}}`;
  }
  return JSON.stringify(value ?? null);
}

/**
 * A multipart body's pieces, read and dropped, are freed only when Bun collects: a young
 * collection per MiB and a full one per 8 MiB, as for a stored upload (lib/files.ts).
 */
const dropped = collectEvery(8 * 1024 * 1024, 1024 * 1024);

/**
 * Reads a request the way the intake would (multipart, raw body, JSON) and answers its
 * digest, storing nothing: the file's bytes are hashed and dropped. A body past
 * `maxBytes` is 413, one that cannot be read is 415 or 422, as the intake answers them.
 */
export async function digestOnly(request: Request, maxBytes: number): Promise<string> {
  const digest = requestDigest();
  const type = request.headers.get("content-type") ?? "";
  const query = [...new URL(request.url).searchParams];
  // The file's bytes, hashed and dropped, at most maxBytes of them.
  const hashAll = async (pieces: AsyncIterable<Uint8Array>) => {
    const hash = digest.bytes();
    let bytes = 0;
    for await (const piece of pieces) {
      bytes += piece.length;
      if (bytes > maxBytes) throw new TooLarge(maxBytes);
      hash(piece);
      dropped(piece.length);
    }
  };
  try {
    if (!request.body) throw new Unprocessable("the request has no body: send a video or an audio file");
    if (/^multipart\/form-data/i.test(type)) {
      const { result: filename, fields } = await readMultipartFile(request.body, type, "file", async (file) => {
        await hashAll(file.pieces);
        return file.filename;
      });
      digest.describe(formDescription(query, fields, filename));
    } else if (/^(video|audio)\//i.test(type) || /^application\/octet-stream/i.test(type)) {
      await hashAll(bodyPieces(request.body));
      digest.describe(rawDescription(query, type, request));
    } else if (/^application\/json/i.test(type))
      digest.describe(jsonDescription(query, await limitedJson()({ request })));
    else
      throw new UnsupportedMediaType(
        "send multipart/form-data with a `file` field, a video or audio file, or JSON {url}",
      );
  } catch (error) {
    if (error instanceof TooLarge) throw new ContentTooLarge(`the video is larger than ${formatBytes(error.limit)}`);
    if (error instanceof BadMultipart) throw new Unprocessable(error.message);
    throw error;
  }
  return digest.value();
}
