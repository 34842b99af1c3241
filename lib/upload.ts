// Streaming media intake, for uploads and downloaded links alike: a size limit
// checked while the bytes flow and a check of the first bytes that this is a video or
// audio (by its signature, with file-type, not by its name or declared type), so no
// upload is ever held in memory whole. Multipart bodies: lib/multipart.ts.
import { Transform, type TransformCallback } from "node:stream";
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
