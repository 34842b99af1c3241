// The cover's frame out of an MP4/MOV without reading up to it. Through a pipe the cover's
// ffmpeg cannot seek: it reads every byte up to its time (a tenth of the video, up to a
// minute in: 100 MB of a 1 GiB file, fetched a second time) and decodes every keyframe on
// the way. The index says which sample is the keyframe at or before the time and where its
// bytes lie, so the cover's ffmpeg is fed a one-frame MP4 instead: the file's type, an index
// of that video track alone (its description as stored, one sample), and the sample's bytes
// (converter/source.ts fetches them, a chunk or two). Anything odd answers null, and the
// cover is taken from the stream as before.
import {
  box,
  childBoxes,
  find,
  type InnerBox,
  readOffsets,
  type Span,
  sampleSizes,
  samplesPerChunk,
  type TrackFragment,
  Unhandled,
} from "./mp4-index.ts";

/** The keyframe's place in the file, and the one-frame MP4 around it: `head`, then the sample's bytes. */
export interface KeyframeFile {
  head: Buffer;
  sample: Span;
}

/**
 * The one-frame MP4 of the keyframe at or before `atSec` of the video track `trak` (a box
 * of `moov`, the file's index), after `ftyp` (the file's own, or none); null if the track's
 * tables are not the plain kind. In a fragmented file (`fragments`: every track fragment),
 * the keyframe is the first sample of the last fragment of the track that starts with one
 * at or before the time, or one of the index's own samples before the fragments.
 */
export function keyframeFile(
  moov: Buffer,
  trak: InnerBox,
  atSec: number,
  ftyp: Buffer,
  fragments: TrackFragment[] = [],
): KeyframeFile | null {
  try {
    const box = (type: string) => find(moov, trak, ...pathTo(type));
    const [tkhd, mdhd, stbl] = [find(moov, trak, "tkhd"), box("mdhd"), box("stbl")];
    if (!tkhd || !mdhd || !stbl) return null;
    const tables = new Map(childBoxes(moov, stbl.body, stbl.end).map((table) => [table.type, table]));
    const timescale = moov.readUInt32BE(mdhd.body + (moov[mdhd.body] === 1 ? 20 : 12));
    const time = Math.floor(atSec * timescale);
    const trackId = moov.readUInt32BE(tkhd.body + (moov[tkhd.body] === 1 ? 20 : 12));
    let span = fragmentKeyframe(fragments, trackId, time);
    if (!span) {
      const sample = syncSampleAt(moov, tables, time);
      span = sample === null ? null : sampleSpan(moov, tables, sample);
    }
    if (!span) return null;
    const oneFrame = indexOfOne(moov, trak, tables, span.end - span.start, ftyp.length);
    return oneFrame ? { head: Buffer.concat([ftyp, oneFrame]), sample: span } : null;
  } catch (error) {
    if (error instanceof Unhandled || error instanceof RangeError) return null;
    throw error;
  }
}

/** The first sample of the track's last fragment that starts with a keyframe at or before `time`. */
function fragmentKeyframe(fragments: TrackFragment[], trackId: number, time: number): Span | null {
  let found: Span | null = null;
  for (const traf of fragments) {
    const first = traf.runs[0]?.first;
    if (traf.trackId !== trackId || traf.decodeTime === undefined || !first?.sync) continue;
    if (traf.decodeTime > time) break;
    found = first.span;
  }
  return found;
}

const pathTo = (type: string) =>
  type === "mdhd" ? ["mdia", "mdhd"] : ["mdia", "minf", ...(type === "stbl" ? ["stbl"] : [type])];

/** The 0-based number of the last sync sample decoded at or before `time` (track units). */
function syncSampleAt(moov: Buffer, tables: Map<string, InnerBox>, time: number): number | null {
  const stts = tables.get("stts");
  if (!stts) return null;
  let last = -1; // the last sample decoded at or before the time
  let dts = 0;
  let sample = 0;
  for (let entry = 0, count = moov.readUInt32BE(stts.body + 4); entry < count && dts <= time; entry++) {
    const samples = moov.readUInt32BE(stts.body + 8 + entry * 8);
    const delta = moov.readUInt32BE(stts.body + 12 + entry * 8);
    const within = delta ? Math.min(samples, Math.floor((time - dts) / delta) + 1) : samples;
    last = sample + within - 1;
    sample += samples;
    dts += samples * delta;
  }
  if (last < 0) return null;
  const stss = tables.get("stss");
  if (!stss) return last; // no table: every sample is a sync sample
  let found: number | null = null;
  for (let entry = 0, count = moov.readUInt32BE(stss.body + 4); entry < count; entry++) {
    const number = moov.readUInt32BE(stss.body + 8 + entry * 4) - 1; // the table counts from 1
    if (number > last) break;
    found = number;
  }
  return found;
}

/** Where sample `sample` (0-based) lies in the file: its chunk's offset and the samples before it there. */
function sampleSpan(moov: Buffer, tables: Map<string, InnerBox>, sample: number): Span | null {
  const [stsc, stsz] = [tables.get("stsc"), tables.get("stsz")];
  const stco = tables.get("stco") ?? tables.get("co64");
  if (!stsc || !stsz || !stco) return null;
  const offsets = readOffsets(moov, stco, stco.type === "co64" ? 8 : 4);
  const sizeOf = sampleSizes(moov, stsz);
  let first = 0; // the chunk's first sample
  for (const [chunk, count] of samplesPerChunk(moov, stsc, offsets.length).entries()) {
    if (sample < first + count) {
      let offset = offsets[chunk]!;
      for (let before = first; before < sample; before++) offset += sizeOf(before);
      return { start: offset, end: offset + sizeOf(sample) };
    }
    first += count;
  }
  return null;
}

/** `moov` with the one track, whose tables now hold one sample of `size` bytes right after it. */
function indexOfOne(moov: Buffer, trak: InnerBox, tables: Map<string, InnerBox>, size: number, before: number) {
  const [outer] = childBoxes(moov, 0, moov.length);
  const mvhd = find(moov, outer!, "mvhd");
  const [tkhd, mdia] = [find(moov, trak, "tkhd"), find(moov, trak, "mdia")];
  const [mdhd, hdlr, minf] = ["mdhd", "hdlr", "minf"].map((type) => (mdia ? find(moov, mdia, type) : undefined));
  const stsd = tables.get("stsd");
  if (!mvhd || !tkhd || !mdhd || !hdlr || !minf || !stsd) return null;
  const copy = (inner: InnerBox) => moov.subarray(inner.start, inner.end);
  const media = childBoxes(moov, minf.body, minf.end)
    .filter((inner) => inner.type !== "stbl")
    .map(copy);
  const table = (type: string, ...words: number[]) => box(type, [words32(0, ...words)]); // version 0, no flags
  const build = (offset: number) => {
    const stbl = box("stbl", [
      copy(stsd),
      table("stts", 1, 1, 1), // one sample, lasting one unit
      table("stss", 1, 1), // a sync sample
      table("stsc", 1, 1, 1, 1), // in one chunk
      table("stsz", 0, 1, size),
      table("stco", 1, offset),
    ]);
    const track = box("trak", [copy(tkhd), box("mdia", [copy(mdhd), copy(hdlr), box("minf", [...media, stbl])])]);
    return box("moov", [copy(mvhd), track]);
  };
  const length = build(0).length; // the offset's value does not change the size
  const header = box("mdat", []);
  header.writeUInt32BE(8 + size);
  return Buffer.concat([build(before + length + header.length), header]);
}

function words32(...words: number[]): Buffer {
  const buffer = Buffer.alloc(words.length * 4);
  for (const [index, word] of words.entries()) buffer.writeUInt32BE(word, index * 4);
  return buffer;
}
