// The MP3's ID3v2.3 tag (the version every player reads), put in front of ffmpeg's bare
// MP3: title, artist, album, the front cover (APIC) and the chapters (CHAP frames under one
// ordered CTOC, as ffmpeg's own muxer writes them). It is built here rather than by ffmpeg's
// muxer because what goes in it (the source's title, the cover frame, the chapters on the
// trimmed timeline) is known only once the probe has answered, and ffmpeg starts before
// that: a probe before ffmpeg would cost every job one more process start (~60 ms here,
// BENCHMARKS.md). Nothing else goes in: none of the source's container tags, no encoder.
import type { Chapter } from "./plan.ts";

export interface Id3Contents {
  title: string;
  artist?: string;
  album?: string;
  chapters?: Chapter[];
  /** A JPEG, the front cover. */
  cover?: Buffer;
}

/** ID3v2.3 allows 255 entries in a table of contents. */
export const MAX_CHAPTERS = 255;
/** APIC picture type 3: "Cover (front)". */
const FRONT_COVER = 3;

/** The whole tag: a 10-byte header and the frames. */
export function id3Tag({ title, artist, album, chapters = [], cover }: Id3Contents): Buffer {
  const frames = [textFrame("TIT2", title)];
  if (artist) frames.push(textFrame("TPE1", artist));
  if (album) frames.push(textFrame("TALB", album));
  if (cover)
    frames.push(frame("APIC", Buffer.concat([latin1("\0image/jpeg\0"), Buffer.from([FRONT_COVER, 0]), cover])));
  frames.push(...chapterFrames(chapters.slice(0, MAX_CHAPTERS)));
  const body = Buffer.concat(frames);
  const header = Buffer.from([0x49, 0x44, 0x33, 3, 0, 0, 0, 0, 0, 0]); // "ID3", v2.3.0, no flags
  header.set(syncsafe(body.length), 6);
  return Buffer.concat([header, body]);
}

/** One CTOC "toc" (top-level, ordered) naming every CHAP "chN"; each CHAP holds its span in ms and its title. */
function chapterFrames(chapters: Chapter[]): Buffer[] {
  if (chapters.length === 0) return [];
  const ids = chapters.map((_, index) => `ch${index}`);
  const toc = Buffer.concat([
    latin1("toc\0"),
    Buffer.from([0x03, chapters.length]),
    latin1(ids.map((id) => `${id}\0`).join("")),
  ]);
  const chaps = chapters.map((chapter, index) => {
    const times = Buffer.alloc(16, 0xff); // start ms, end ms; byte offsets unused (all ones)
    times.writeUInt32BE(Math.round(chapter.startSec * 1000), 0);
    times.writeUInt32BE(Math.round(chapter.endSec * 1000), 4);
    const title = chapter.title ? [textFrame("TIT2", chapter.title)] : [];
    return frame("CHAP", Buffer.concat([latin1(`${ids[index]}\0`), times, ...title]));
  });
  return [frame("CTOC", toc), ...chaps];
}

/** A text frame: ISO-8859-1 when every character fits, else UTF-16 with a byte-order mark (v2.3 has no UTF-8). */
function textFrame(id: string, text: string): Buffer {
  const fitsLatin1 = [...text].every((char) => char.codePointAt(0)! <= 0xff);
  const encoded = fitsLatin1
    ? Buffer.concat([Buffer.from([0]), latin1(text)])
    : Buffer.concat([Buffer.from([1, 0xff, 0xfe]), Buffer.from(text, "utf16le")]);
  return frame(id, encoded);
}

/** A v2.3 frame: its id, its size (a plain 32-bit number in v2.3), no flags, its body. */
function frame(id: string, body: Buffer): Buffer {
  const header = Buffer.alloc(10);
  header.write(id, 0, "latin1");
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}

const latin1 = (text: string) => Buffer.from(text, "latin1");

/** The tag's size as ID3 writes it: 7 bits a byte, so no byte of it looks like an MPEG sync. */
function syncsafe(size: number): number[] {
  if (size >= 2 ** 28) throw new Error(`an ID3 tag of ${size} bytes is too large`);
  return [(size >> 21) & 0x7f, (size >> 14) & 0x7f, (size >> 7) & 0x7f, size & 0x7f];
}
