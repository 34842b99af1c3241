// A multipart/form-data body read as it arrives (busboy), for the one file it carries and
// its fields: the file's pieces are handed on while they arrive, never held whole.
import type { Readable } from "node:stream";
import busboy from "busboy";
import { release } from "./upload.ts";

export class BadMultipart extends Error {
  override name = "BadMultipart";
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
