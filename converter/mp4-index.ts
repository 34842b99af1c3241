// Reading an MP4/MOV index for where each track's samples lie in the file: the chunk
// tables of `moov` (`stco`/`co64`, `stsc`, `stsz`) and the runs of a fragment (`moof`:
// `tfhd`, `trun`), as ISO/IEC 14496-12 lays them out. converter/audio-only.ts uses it to
// fetch only the sound's bytes. Anything this does not handle (compact sample sizes,
// encrypted fragments, runs without an offset) answers null or throws Unhandled: the
// caller then reads the file as it is, so an odd file costs bytes, never a wrong read.
import { boxHeader } from "./faststart.ts";

/** A byte range [start, end) of the stored file. */
export interface Span {
  start: number;
  end: number;
}

/** A box inside a buffer: its type, where it starts, its size and where its body starts. */
export interface InnerBox {
  type: string;
  start: number;
  end: number;
  body: number;
}

export class Unhandled extends Error {
  override name = "Unhandled";
}

/** The boxes directly inside [start, end) of `buffer`; throws Unhandled if one is malformed. */
export function childBoxes(buffer: Buffer, start: number, end: number): InnerBox[] {
  const boxes: InnerBox[] = [];
  for (let at = start; at < end; ) {
    const box = boxHeader(buffer.subarray(at, Math.min(end, at + 16)), at, end);
    if (!box) throw new Unhandled(`a malformed box at ${at}`);
    const headerBytes = buffer.readUInt32BE(at) === 1 ? 16 : 8;
    boxes.push({ type: box.type, start: at, end: at + box.size, body: at + headerBytes });
    at += box.size;
  }
  return boxes;
}

/** A box of `type` around `parts`. */
export function box(type: string, parts: Buffer[]): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt32BE(8 + parts.reduce((sum, part) => sum + part.length, 0));
  header.write(type, 4, "latin1");
  return Buffer.concat([header, ...parts]);
}

/** The first box of `path` (types, each inside the last) under `parent`; undefined if there is none. */
export function find(buffer: Buffer, parent: InnerBox, ...path: string[]): InnerBox | undefined {
  let found: InnerBox | undefined = parent;
  for (const type of path) {
    if (!found) return undefined;
    found = childBoxes(buffer, found.body, found.end).find((box) => box.type === type);
  }
  return found;
}

/** A track of `moov`: its id, handler (`soun`, `vide`, …), box, and its chunks in the file. */
export interface Track {
  id: number;
  handler: string;
  /** Units per second of its times (`mdhd`), and how long its samples in `moov` last in them. */
  timescale: number;
  duration: number;
  box: InnerBox;
  chunks: Span[];
  /** Where each chunk's offset is written in `moov`, and how wide (4: `stco`, 8: `co64`). */
  offsets: { at: number; width: 4 | 8 };
}

/** Per-track defaults of a fragmented file (`trex`): the sample size and duration a run may leave out. */
export type TrackDefaults = Map<number, { sampleSize: number; sampleDuration: number; sampleFlags: number }>;

/** The tracks of `moov` (the whole box in `buffer`) and the fragments' defaults. */
export function readMoov(buffer: Buffer): { tracks: Track[]; defaults: TrackDefaults } {
  const moov = childBoxes(buffer, 0, buffer.length)[0];
  if (moov?.type !== "moov") throw new Unhandled("not a moov");
  const tracks: Track[] = [];
  const defaults: TrackDefaults = new Map();
  for (const box of childBoxes(buffer, moov.body, moov.end)) {
    if (box.type === "trak") tracks.push(readTrack(buffer, box));
    if (box.type !== "mvex") continue;
    for (const trex of childBoxes(buffer, box.body, box.end).filter((inner) => inner.type === "trex"))
      defaults.set(buffer.readUInt32BE(trex.body + 4), {
        sampleDuration: buffer.readUInt32BE(trex.body + 12),
        sampleSize: buffer.readUInt32BE(trex.body + 16),
        sampleFlags: buffer.readUInt32BE(trex.body + 20),
      });
  }
  return { tracks, defaults };
}

function readTrack(buffer: Buffer, trak: InnerBox): Track {
  const tkhd = find(buffer, trak, "tkhd");
  const hdlr = find(buffer, trak, "mdia", "hdlr");
  const mdhd = find(buffer, trak, "mdia", "mdhd");
  const stbl = find(buffer, trak, "mdia", "minf", "stbl");
  if (!tkhd || !hdlr || !mdhd || !stbl) throw new Unhandled("a track without its header, handler or tables");
  const id = buffer.readUInt32BE(tkhd.body + (buffer[tkhd.body] === 1 ? 20 : 12));
  const long = buffer[mdhd.body] === 1; // version 1: 64-bit times
  const timescale = buffer.readUInt32BE(mdhd.body + (long ? 20 : 12));
  const duration = long ? Number(buffer.readBigUInt64BE(mdhd.body + 24)) : buffer.readUInt32BE(mdhd.body + 16);
  const handler = buffer.toString("latin1", hdlr.body + 8, hdlr.body + 12);
  const tables = new Map(childBoxes(buffer, stbl.body, stbl.end).map((box) => [box.type, box]));
  if (tables.has("stz2")) throw new Unhandled("compact sample sizes (stz2)");
  const stco = tables.get("stco") ?? tables.get("co64");
  const stsc = tables.get("stsc");
  const stsz = tables.get("stsz");
  if (!stco || !stsc || !stsz) throw new Unhandled("a track without its chunk tables");
  const width = stco.type === "co64" ? 8 : 4;
  const offsets = readOffsets(buffer, stco, width);
  const chunks = chunkSpans(offsets, samplesPerChunk(buffer, stsc, offsets.length), sampleSizes(buffer, stsz));
  return { id, handler, timescale, duration, box: trak, chunks, offsets: { at: stco.body + 8, width } };
}

export function readOffsets(buffer: Buffer, stco: InnerBox, width: 4 | 8): number[] {
  const count = buffer.readUInt32BE(stco.body + 4);
  if (stco.body + 8 + count * width > stco.end) throw new Unhandled("a chunk offset table past its box");
  const offsets: number[] = [];
  for (let entry = 0, at = stco.body + 8; entry < count; entry++, at += width)
    offsets.push(width === 4 ? buffer.readUInt32BE(at) : Number(buffer.readBigUInt64BE(at)));
  return offsets;
}

/** How many samples each of `chunks` chunks holds (`stsc` gives runs of chunks alike). */
export function samplesPerChunk(buffer: Buffer, stsc: InnerBox, chunks: number): number[] {
  const count = buffer.readUInt32BE(stsc.body + 4);
  if (stsc.body + 8 + count * 12 > stsc.end) throw new Unhandled("a sample-to-chunk table past its box");
  const perChunk: number[] = [];
  for (let entry = 0; entry < count; entry++) {
    const at = stsc.body + 8 + entry * 12;
    const first = buffer.readUInt32BE(at);
    const next = entry + 1 < count ? buffer.readUInt32BE(at + 12) : chunks + 1;
    if (first < 1 || next < first || next > chunks + 1) throw new Unhandled("a sample-to-chunk table out of order");
    for (let chunk = first; chunk < next; chunk++) perChunk.push(buffer.readUInt32BE(at + 4));
  }
  return perChunk;
}

/** Every sample's size: one for all, or a table. */
export function sampleSizes(buffer: Buffer, stsz: InnerBox): (sample: number) => number {
  const uniform = buffer.readUInt32BE(stsz.body + 4);
  const count = buffer.readUInt32BE(stsz.body + 8);
  if (uniform === 0 && stsz.body + 12 + count * 4 > stsz.end) throw new Unhandled("a sample size table past its box");
  return (sample) => {
    if (sample >= count) throw new Unhandled("more samples in chunks than sizes");
    return uniform || buffer.readUInt32BE(stsz.body + 12 + sample * 4);
  };
}

function chunkSpans(offsets: number[], perChunk: number[], sizeOf: (sample: number) => number): Span[] {
  if (perChunk.length !== offsets.length) throw new Unhandled("chunk tables that disagree");
  const spans: Span[] = [];
  let sample = 0;
  for (const [chunk, start] of offsets.entries()) {
    let bytes = 0;
    for (let inChunk = 0; inChunk < perChunk[chunk]!; inChunk++) bytes += sizeOf(sample++);
    spans.push({ start, end: start + bytes });
  }
  return spans;
}

/** One track's part of a fragment (`traf`): where its header fields and its runs are. */
export interface TrackFragment {
  box: InnerBox;
  trackId: number;
  /** Where `tfhd` holds a base data offset (8 bytes), if it does. */
  baseAt?: number;
  /** Whether offsets count from the fragment's start (`default-base-is-moof`). */
  baseIsMoof: boolean;
  /** Each run: where its data offset is written, its samples' span in the file, and its first sample's. */
  runs: { offsetAt: number; span: Span; first: { span: Span; sync: boolean } }[];
  /** When its first sample is decoded (`tfdt`), if it says, and how long its samples last (track units). */
  decodeTime?: number;
  duration: number;
}

const TFHD = { baseOffset: 0x1, sampleDescription: 0x2, duration: 0x8, size: 0x10, flags: 0x20, baseIsMoof: 0x20000 };
/** In a sample's flags: the sample is not a sync sample (a keyframe). */
const NON_SYNC = 0x10000;
const TRUN = { dataOffset: 0x1, firstFlags: 0x4, duration: 0x100, size: 0x200, flags: 0x400, composition: 0x800 };

/**
 * The track fragments of `moof` (the whole box in `buffer`, found at `moofStart` in the
 * file), with their runs' spans in the file. Throws Unhandled for what is not handled.
 */
export function readMoof(buffer: Buffer, moofStart: number, defaults: TrackDefaults): TrackFragment[] {
  const moof = childBoxes(buffer, 0, buffer.length)[0];
  if (moof?.type !== "moof") throw new Unhandled("not a moof");
  const fragments: TrackFragment[] = [];
  let implicit = moofStart; // where data continues when a fragment names no base
  for (const traf of childBoxes(buffer, moof.body, moof.end).filter((box) => box.type === "traf")) {
    const inner = childBoxes(buffer, traf.body, traf.end);
    if (inner.some((box) => box.type === "saio" || box.type === "senc")) throw new Unhandled("encrypted fragments");
    const tfhd = inner.find((box) => box.type === "tfhd");
    if (!tfhd) throw new Unhandled("a track fragment without its header");
    const header = readTfhd(buffer, tfhd, defaults);
    const base =
      header.baseAt !== undefined
        ? Number(buffer.readBigUInt64BE(header.baseAt))
        : header.baseIsMoof
          ? moofStart
          : implicit;
    const runs = inner.filter((box) => box.type === "trun").map((trun) => readTrun(buffer, trun, base, header));
    if (runs.length) implicit = runs.at(-1)!.span.end;
    const tfdt = inner.find((box) => box.type === "tfdt");
    const decodeTime = tfdt ? decodeTimeOf(buffer, tfdt) : undefined;
    const duration = runs.reduce((sum, run) => sum + run.duration, 0);
    const { trackId, baseAt, baseIsMoof } = header;
    fragments.push({
      box: traf,
      trackId,
      baseAt,
      baseIsMoof,
      runs,
      duration,
      ...(decodeTime === undefined ? {} : { decodeTime }),
    });
  }
  return fragments;
}

function readTfhd(buffer: Buffer, tfhd: InnerBox, defaults: TrackDefaults) {
  const flags = buffer.readUInt32BE(tfhd.body) & 0xffffff;
  const trackId = buffer.readUInt32BE(tfhd.body + 4);
  let at = tfhd.body + 8;
  const baseAt = flags & TFHD.baseOffset ? at : undefined;
  if (baseAt !== undefined) at += 8;
  if (flags & TFHD.sampleDescription) at += 4;
  const sampleDuration = flags & TFHD.duration ? buffer.readUInt32BE(at) : defaults.get(trackId)?.sampleDuration;
  if (flags & TFHD.duration) at += 4;
  const sampleSize = flags & TFHD.size ? buffer.readUInt32BE(at) : defaults.get(trackId)?.sampleSize;
  if (flags & TFHD.size) at += 4;
  const sampleFlags = flags & TFHD.flags ? buffer.readUInt32BE(at) : defaults.get(trackId)?.sampleFlags;
  const baseIsMoof = Boolean(flags & TFHD.baseIsMoof);
  return { trackId, baseAt, baseIsMoof, sampleSize, sampleDuration, sampleFlags };
}

const decodeTimeOf = (buffer: Buffer, tfdt: InnerBox) =>
  buffer[tfdt.body] === 1 ? Number(buffer.readBigUInt64BE(tfdt.body + 4)) : buffer.readUInt32BE(tfdt.body + 4);

function readTrun(
  buffer: Buffer,
  trun: InnerBox,
  base: number,
  defaults: { sampleSize?: number; sampleDuration?: number; sampleFlags?: number },
) {
  const flags = buffer.readUInt32BE(trun.body) & 0xffffff;
  const count = buffer.readUInt32BE(trun.body + 4);
  if (!(flags & TRUN.dataOffset)) throw new Unhandled("a run without its data offset");
  const offsetAt = trun.body + 8;
  const start = base + buffer.readInt32BE(offsetAt);
  let at = offsetAt + 4 + (flags & TRUN.firstFlags ? 4 : 0);
  const fields = [TRUN.duration, TRUN.size, TRUN.flags, TRUN.composition].filter((field) => flags & field).length;
  if (at + count * fields * 4 > trun.end) throw new Unhandled("a run past its box");
  if (!(flags & TRUN.size) && defaults.sampleSize === undefined) throw new Unhandled("a run without sample sizes");
  const sizeAt = flags & TRUN.duration ? 4 : 0;
  const flagsAt = sizeAt + (flags & TRUN.size ? 4 : 0);
  const firstFlags =
    flags & TRUN.firstFlags
      ? buffer.readUInt32BE(offsetAt + 4)
      : flags & TRUN.flags
        ? buffer.readUInt32BE(at + flagsAt)
        : (defaults.sampleFlags ?? 0);
  let bytes = 0;
  let duration = 0;
  let firstSize = 0;
  for (let sample = 0; sample < count; sample++, at += fields * 4) {
    const size = flags & TRUN.size ? buffer.readUInt32BE(at + sizeAt) : defaults.sampleSize!;
    if (sample === 0) firstSize = size;
    bytes += size;
    duration += flags & TRUN.duration ? buffer.readUInt32BE(at) : (defaults.sampleDuration ?? 0);
  }
  const first = { span: { start, end: start + firstSize }, sync: count > 0 && !(firstFlags & NON_SYNC) };
  return { offsetAt, span: { start, end: start + bytes }, first, duration };
}
