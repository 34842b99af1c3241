// Streaming media intake, for uploads and downloaded links alike: a size limit
// checked while the bytes flow, a check of the first bytes that this is a video or
// audio (by its signature, with file-type, not by its name or declared type), and a
// streaming multipart reader (busboy), so no upload is ever held in memory whole.
import { type Readable, Transform, type TransformCallback } from "node:stream";
import busboy from "busboy";
import { fileTypeFromBuffer } from "file-type";

export class TooLarge extends Error {
  override name = "TooLarge";
  constructor(readonly limit: number) {
    super(`larger than ${formatBytes(limit)}`);
  }
}

export class NotAVideo extends Error {
  override name = "NotAVideo";
}

export class BadMultipart extends Error {
  override name = "BadMultipart";
}

export function formatBytes(bytes: number): string {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${Number.isInteger(value) ? value : value.toFixed(1)} ${units[unit]}`;
}

/** Passes bytes through, failing with TooLarge as soon as more than `max` have passed. */
export function byteLimit(max: number): Transform & { bytes: number } {
  let bytes = 0;
  const limit = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      bytes += chunk.length;
      limit.bytes = bytes;
      if (bytes > max) done(new TooLarge(max));
      else done(null, chunk);
    },
  }) as Transform & { bytes: number };
  limit.bytes = 0;
  return limit;
}

// file-type reads at most this many bytes to recognise a container.
export const SNIFF_BYTES = 4100;

/**
 * The audio-only sources accepted beside every video type, as file-type names them (and so
 * as a job's `source.contentType` holds them): M4A, MP3, WAV, FLAC, Ogg (Vorbis) and Opus.
 * Other audio (MIDI, tracker modules, AMR...) is not something we convert.
 */
export const AUDIO_TYPES = [
  "audio/x-m4a",
  "audio/mp4",
  "audio/mpeg",
  "audio/wav",
  "audio/flac",
  "audio/ogg",
  "audio/ogg; codecs=opus",
] as const;
const isMedia = (mime: string) => mime.startsWith("video/") || (AUDIO_TYPES as readonly string[]).includes(mime);

export interface Sniffed {
  mime: string;
  ext: string;
}

/** What the first bytes of a file (SNIFF_BYTES are enough) show it is; NotAVideo unless a video or an accepted audio type. */
export async function sniffMedia(head: Uint8Array): Promise<Sniffed> {
  const type = await fileTypeFromBuffer(head.subarray(0, SNIFF_BYTES));
  if (!type || !isMedia(type.mime))
    throw new NotAVideo(head.length === 0 ? "the file is empty" : "the file is not a video or an audio file");
  return { mime: type.mime, ext: type.ext };
}

/** What `checkedUpload` passes on: the file's pieces, and what they are once sniffed. */
export interface CheckedUpload {
  pieces: AsyncIterable<Uint8Array>;
  /** The type the first bytes showed (known once the first piece is passed on). */
  sniffed(): Sniffed;
}

/**
 * An upload's pieces as they are passed on to be stored, checked on the way, with no stream
 * in between: at most `max` bytes (else TooLarge), and first bytes that show a video or an
 * accepted audio type (else NotAVideo; nothing is passed on before they are known). `hash`
 * sees every byte. A piece is done with when the next is asked for, as `pieces` gave it.
 */
export function checkedUpload(
  source: AsyncIterable<Uint8Array>,
  max: number,
  hash?: (piece: Uint8Array) => void,
): CheckedUpload {
  let sniffed: Sniffed | undefined;
  async function* pieces(): AsyncGenerator<Uint8Array> {
    let bytes = 0;
    let head = Buffer.alloc(0); // the first bytes, copied, until there are enough to sniff
    for await (const piece of source) {
      bytes += piece.length;
      if (bytes > max) throw new TooLarge(max);
      hash?.(piece);
      if (sniffed) {
        yield piece;
        continue;
      }
      if (bytes < SNIFF_BYTES) {
        head = Buffer.concat([head, piece]);
        continue;
      }
      sniffed = await sniffMedia(Buffer.concat([head, piece.subarray(0, SNIFF_BYTES - head.length)]));
      if (head.length) yield head;
      yield piece;
    }
    if (sniffed) return;
    sniffed = await sniffMedia(head);
    yield head;
  }
  return {
    pieces: pieces(),
    sniffed: () => {
      if (!sniffed) throw new Error("the upload is not sniffed yet");
      return sniffed;
    },
  };
}

/**
 * A request body's pieces as Bun hands them over, each freed once the next is asked for
 * (the consumer has copied it by then): rather than left to the next collection, detaching
 * its memory frees it at once. Only a piece that is the whole of its memory is ours to free.
 * `cancel()` ends a read under way (the pieces end).
 */
export function bodyPieces(body: ReadableStream<Uint8Array>): AsyncIterable<Uint8Array> & { cancel(): void } {
  const reader = body.getReader();
  const cancel = () => void reader.cancel().catch(() => {});
  async function* pieces(): AsyncGenerator<Uint8Array> {
    let done = false;
    try {
      for (;;) {
        const { done: end, value } = await reader.read();
        done = end;
        if (end) return;
        yield value;
        release(value);
      }
    } finally {
      if (!done) cancel(); // the consumer stopped early: the rest of the body is not read
    }
  }
  return Object.assign(pieces(), { cancel });
}

/** Frees a piece of a request body that is the whole of its memory (see `bodyPieces`). */
export function release(piece: Uint8Array): void {
  if (piece.byteOffset !== 0 || piece.buffer.byteLength !== piece.byteLength) return;
  try {
    (piece.buffer as ArrayBuffer).transfer(0);
  } catch {
    // not detachable: the collector frees it
  }
}

/**
 * Holds back the first bytes until their signature says "video" (MP4/MOV, Matroska,
 * WebM, AVI, MPEG-TS, FLV, ...) or one of AUDIO_TYPES, then passes everything through;
 * fails with NotAVideo.
 */
export function videoSniffer(): Transform & { sniffed: Promise<Sniffed> } {
  let head: Buffer[] = [];
  let headBytes = 0;
  let decided = false;
  let resolveSniffed!: (value: Sniffed) => void;
  let rejectSniffed!: (error: Error) => void;
  const sniffed = new Promise<Sniffed>((resolve, reject) => {
    resolveSniffed = resolve;
    rejectSniffed = reject;
  });
  sniffed.catch(() => {}); // the stream error reports it; the promise is for callers who want the type

  async function decide(stream: Transform, done: TransformCallback) {
    decided = true;
    const buffer = Buffer.concat(head);
    head = [];
    let type: Sniffed;
    try {
      type = await sniffMedia(buffer);
    } catch (error) {
      rejectSniffed(error as Error);
      return done(error as Error);
    }
    resolveSniffed(type);
    stream.push(buffer);
    done();
  }

  const sniffer = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      if (decided) return done(null, chunk);
      head.push(chunk);
      headBytes += chunk.length;
      if (headBytes < SNIFF_BYTES) return done();
      void decide(this, done);
    },
    flush(done) {
      if (decided) return done();
      void decide(this, done);
    },
  }) as Transform & { sniffed: Promise<Sniffed> };
  sniffer.sniffed = sniffed;
  return sniffer;
}

export interface MultipartFile {
  /** The file's bytes as they arrive; each is done with when the next is asked for. */
  pieces: AsyncIterable<Uint8Array>;
  /** Ends `pieces` with `error` (e.g. a write of them failed). */
  stop(error: Error): void;
  /** The file name as the part gave it (a browser's escapes, %22 and %0D%0A, left as they are). */
  filename: string;
  contentType: string;
}

/** A part that is not the file: its name, and its text (or, for another file, FILE_PART). */
export type MultipartField = [name: string, value: string | typeof FILE_PART];
/** Stands for a file sent in a field other than the file's: never a valid value. */
export const FILE_PART: unique symbol = Symbol("a file");

/** The most bytes a text field is read to; a longer value is cut there (and no option is that long). */
const FIELD_BYTES = 16 * 1024;

/**
 * Reads a multipart/form-data body as a stream and hands the one file in `field` to
 * `handle` while it arrives, with the fields that came before it; answers what `handle`
 * answered and every field, those after the file too. Fails with BadMultipart when the
 * body is malformed, has no such file, more than one file, or too many fields.
 */
export function readMultipartFile<T>(
  body: ReadableStream<Uint8Array>,
  contentType: string,
  field: string,
  handle: (file: MultipartFile, fieldsBefore: MultipartField[]) => Promise<T>,
): Promise<{ result: T; fields: MultipartField[] }> {
  return new Promise((resolve, reject) => {
    const reader = body.getReader();
    let parser: busboy.Busboy;
    try {
      parser = busboy({
        headers: { "content-type": contentType },
        limits: { files: 1, fields: 20, parts: 30, fieldSize: FIELD_BYTES },
        defParamCharset: "utf8", // browsers send file names as UTF-8; busboy's default is latin1
      });
    } catch (error) {
      void reader.cancel().catch(() => {});
      return reject(new BadMultipart(`the multipart body could not be read: ${(error as Error).message}`));
    }
    const fields: MultipartField[] = [];
    let handling: Promise<T> | undefined;
    let fileStream: Readable | undefined;
    let file: PartPieces | undefined;
    let failure: Error | undefined;
    let settled = false;

    // Settles once, after the file handler (if any) has finished cleaning up.
    const settle = async () => {
      if (settled) return;
      settled = true;
      if (!handling)
        return reject(failure ?? new BadMultipart(`the multipart body has no file in the '${field}' field`));
      try {
        const result = await handling;
        if (failure) reject(failure);
        else resolve({ result, fields });
      } catch (error) {
        reject(failure ?? error);
      }
    };
    const fail = (error: Error) => {
      failure ??= error;
      void reader.cancel().catch(() => {});
      fileStream?.destroy(failure);
      void settle();
    };

    parser.on("file", (name, stream, info) => {
      if (name !== field || handling) {
        stream.resume();
        if (name === field) fail(new BadMultipart(`send exactly one file in the '${field}' field`));
        else fields.push([name, FILE_PART]);
        return;
      }
      fileStream = stream;
      file = partPieces(stream);
      const stop = (error: Error) => stream.destroy(error);
      const named = { filename: info.filename ?? "video", contentType: info.mimeType };
      handling = handle({ pieces: file.pieces, stop, ...named }, [...fields]);
      handling.catch((error: Error) => fail(error));
    });
    parser.on("field", (name, value) => fields.push([name, value]));
    parser.on("filesLimit", () => fail(new BadMultipart(`send exactly one file in the '${field}' field`)));
    parser.on("fieldsLimit", () => fail(new BadMultipart("the form has too many fields")));
    parser.on("partsLimit", () => fail(new BadMultipart("the form has too many parts")));
    parser.on("error", (error: Error) =>
      fail(new BadMultipart(`the multipart body could not be read: ${error.message}`)),
    );
    parser.on("close", () => void settle());
    feed(
      reader,
      parser,
      () => file,
      () => failure !== undefined,
    ).catch(fail);
  });
}

/**
 * Writes the body into the parser piece by piece, each once the one before is taken (busboy
 * holds a write back while the file's stream is full), then ends it. Not `Readable.fromWeb`
 * piped into it: a stream less, and its buffering, between the socket and the file. A piece
 * that went whole to the file, as views of it (no boundary, header or field in it), is freed
 * once the file's reader has let go of them, as a raw body's pieces are (`bodyPieces`).
 */
async function feed(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  parser: busboy.Busboy,
  file: () => PartPieces | undefined,
  failed: () => boolean,
) {
  for (;;) {
    const { done, value } = await reader.read();
    if (failed()) return;
    if (done) break;
    const part = file();
    part?.watch(value);
    // A write that fails leaves the parser's error to its 'error' event (a BadMultipart).
    const taken = await new Promise<boolean>((resolve) => parser.write(value, (error) => resolve(!error)));
    if (!taken || failed()) return;
    if (part && part === file() && (await part.caughtUp()) && part.whole()) release(value);
  }
  parser.end();
}

type PartPieces = ReturnType<typeof partPieces>;

/**
 * The file part's pieces, as busboy's stream emits them, for one reader. `watch(piece)` before
 * a body piece is written to the parser, then `caughtUp()` (true once the reader has taken
 * every piece emitted and asks for more) and `whole()`: every byte of the body piece was
 * emitted as a view of it, so nothing else (a field's value) holds on to it.
 */
function partPieces(stream: Readable) {
  const queue: Uint8Array[] = [];
  let ended = false;
  let error: Error | undefined;
  let over = false; // the reader stopped, or the stream is gone: never caught up again
  let waiting = false; // the reader waits for a piece
  let wake: (() => void) | undefined;
  let idle: ((caught: boolean) => void) | undefined;
  let watched: Uint8Array | undefined;
  let viewBytes = 0;
  const poke = () => {
    const resume = wake;
    wake = undefined;
    resume?.();
  };
  const checkIdle = () => {
    if (!idle) return;
    if (over) idle(false);
    else if (waiting && !queue.length && !stream.readableLength) idle(true);
    else return;
    idle = undefined;
  };
  stream.on("data", (piece: Uint8Array) => {
    if (over) return; // no reader any more: dropped
    if (piece.buffer === watched?.buffer) viewBytes += piece.length;
    queue.push(piece);
    poke();
  });
  stream.on("end", () => {
    ended = true;
    poke();
  });
  // Destroyed with the failure when the body fails: a handler that refused the file before
  // reading it must not leave that error unheard.
  stream.on("error", (cause: Error) => {
    error = cause;
    poke();
  });
  stream.on("close", () => {
    over = true;
    poke();
    checkIdle();
  });
  async function* pieces(): AsyncGenerator<Uint8Array> {
    try {
      for (;;) {
        const piece = queue.shift();
        if (piece) {
          yield piece;
          continue;
        }
        if (error) throw error;
        if (ended) return;
        waiting = true;
        checkIdle();
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        waiting = false;
      }
    } finally {
      over = true;
      checkIdle();
      if (!ended) stream.resume(); // the rest of the part is dropped
    }
  }
  return {
    pieces: pieces(),
    watch(piece: Uint8Array) {
      watched = piece;
      viewBytes = 0;
    },
    caughtUp: () =>
      new Promise<boolean>((resolve) => {
        idle = resolve;
        checkIdle();
      }),
    whole: () => watched !== undefined && viewBytes === watched.length,
  };
}
