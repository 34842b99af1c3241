// An MP4/MOV's sound without its pictures, read out of GridFS chunk by chunk: what the
// audio's ffmpeg is fed whenever the file has video to leave out. The stream is a smaller
// MP4 of the same tracks but the video ones:
// - the index (`moov`) without its video tracks, each kept chunk's offset rewritten to
//   where it now lies, then one `mdat` with those chunks in the file's order;
// - then, for a fragmented file, each fragment (`moof`) without its video track fragments,
//   each run's offset rewritten, and an `mdat` with the runs.
// Where the sound lies in runs of its own (phones write ~1 s runs, fragmented files a run
// per fragment), only the chunks holding the index and the sound are fetched. Where it is
// in every chunk (a camera's audio every 23 ms), every chunk is read, as it would be
// anyway, but only the sound crosses the pipe: ffmpeg no longer reads a gigabyte of video
// to throw it away, nor does this process write it.
// Every fragment's header is read first (one chunk each, held while converting): they also
// tell how long the tracks last, which ffprobe reading a pipe cannot see past the first
// fragment. Probing and the cover read the index and a keyframe (converter/source.ts); a
// file this does not handle stays on the `piped` or `relocated` path.
import { Readable } from "node:stream";
import type { ChunkReader } from "./chunk-reader.ts";
import { boxHeader, type MovLayout } from "./faststart.ts";
import {
  box,
  childBoxes,
  readMoof,
  readMoov,
  type Span,
  type Track,
  type TrackDefaults,
  type TrackFragment,
  Unhandled,
} from "./mp4-index.ts";

/** A fragment header larger than this is not a recording's. */
const MAX_MOOF_BYTES = 4 * 1024 * 1024;
/** The fragments' headers are held while converting: at most this much of them. */
const MAX_HEADER_BYTES = 32 * 1024 * 1024;
/** The sound read with the headers is held too, up to this much (~17 min at 128 kbit/s); the rest is fetched again. */
const MAX_HELD_BYTES = 16 * 1024 * 1024;

/** How the sound alone is read; `share` is the share of the file's chunks it fetches. */
export interface AudioOnly {
  share: number;
  open(signal: AbortSignal): Readable;
}

/** What the index tells beyond what a pipe gives ffprobe, and how to read the sound alone. */
export interface Mp4Reading {
  /**
   * How long each audio track lasts (seconds, in the index's order), and the first video
   * track: a fragmented file's index tells only its first fragment's, and ffprobe reading a
   * pipe sees no further.
   */
  durations?: { audio: number[]; video?: number };
  /** Reading only the sound: when the index allows it and it saves enough. */
  sound?: AudioOnly;
  /** Every track fragment of a fragmented file, in the file's order (converter/keyframe.ts finds the cover's there). */
  fragments?: TrackFragment[];
}

/** A fragment: where its header (`moof`) starts, the header, and its track fragments. */
interface Fragment {
  start: number;
  moof: Buffer;
  trafs: TrackFragment[];
  /** Runs of sound already read, by where they start in the file. */
  held: Map<number, Buffer>;
}

const isKept = (handler: string) => handler !== "vide";

/** What the index of a file laid out as `layout` gives: `moov` is that index, the fragments are read here. */
export async function mp4Reading(
  reader: (signal?: AbortSignal) => ChunkReader,
  layout: MovLayout,
  moov: Buffer,
  file: { chunkSize: number; length: number },
): Promise<Mp4Reading> {
  try {
    const { tracks, defaults } = readMoov(moov);
    const keptIds = new Set(tracks.filter((track) => isKept(track.handler)).map((track) => track.id));
    const fragments =
      layout.firstFragment === undefined
        ? []
        : await walkFragments(reader(), layout.firstFragment, file.length, defaults, keptIds);
    const durations = fragments.length ? trackDurations(tracks, fragments) : undefined;
    const sound = await soundAlone(reader, layout, { moov, tracks, fragments, keptIds }, file);
    const trafs = fragments.flatMap((fragment) => fragment.trafs);
    return { ...(durations ? { durations, fragments: trafs } : {}), ...(sound ? { sound } : {}) };
  } catch (error) {
    if (error instanceof Unhandled) return {};
    throw error;
  }
}

/**
 * Every fragment's header, read one after the other (each names the next by its size). The
 * sound usually ends right where the next header starts, in the chunk read for that header:
 * its bytes are kept then (up to MAX_HELD_BYTES in all), so the stream does not fetch that
 * chunk a second time.
 */
async function walkFragments(
  reader: ChunkReader,
  from: number,
  length: number,
  defaults: TrackDefaults,
  keptIds: Set<number>,
) {
  const fragments: Fragment[] = [];
  const budget = { headers: MAX_HEADER_BYTES, held: MAX_HELD_BYTES };
  for (let at = from; at < length; ) {
    const previous = fragments.at(-1);
    // Reaching back one chunk fetches a run that crosses into the header's chunk with it.
    const runs = previous ? keptRuns(previous, keptIds) : [];
    const reach = runs.length && Math.floor(runs[0]!.start / reader.chunkSize) >= Math.floor(at / reader.chunkSize) - 1;
    await reader.read(reach ? Math.min(runs[0]!.start, at) : at, Math.min(length, at + 16));
    if (previous) holdRuns(reader, previous, runs, budget);
    const box = boxHeader(await reader.read(at, Math.min(length, at + 16)), at, length);
    if (!box) throw new Unhandled(`a malformed box at ${at}`);
    if (box.type === "moof") {
      budget.headers -= box.size;
      if (box.size > MAX_MOOF_BYTES || budget.headers < 0) throw new Unhandled("fragment headers too large");
      const moof = await reader.read(box.start, box.start + box.size);
      fragments.push({ start: box.start, moof, trafs: readMoof(moof, box.start, defaults), held: new Map() });
    } else if (box.type === "moov") throw new Unhandled("a second index after the fragments");
    at += box.size; // `mdat`s are read through their runs; `mfra`, `sidx`, `free` and the like are left out
  }
  const last = fragments.at(-1);
  if (last) holdRuns(reader, last, keptRuns(last, keptIds), budget);
  return fragments;
}

/** Keeps the bytes of the runs whose chunks the reader still has, while the budget lasts. */
function holdRuns(reader: ChunkReader, fragment: Fragment, runs: Span[], budget: { held: number }) {
  for (const run of runs) {
    if (budget.held < run.end - run.start) return;
    const bytes = reader.kept(run.start, run.end);
    if (!bytes) continue;
    fragment.held.set(run.start, bytes);
    budget.held -= bytes.length;
  }
}

/** Each track's end: its last fragment's decode time (or the sum of what came before) and duration. */
function trackDurations(tracks: Track[], fragments: Fragment[]) {
  const seconds = (track: Track) => {
    let end = track.duration;
    for (const traf of fragments.flatMap((fragment) => fragment.trafs))
      if (traf.trackId === track.id) end = Math.max(end, (traf.decodeTime ?? end) + traf.duration);
    return track.timescale ? end / track.timescale : 0;
  };
  const video = tracks.find((track) => track.handler === "vide");
  const audio = tracks.filter((track) => track.handler === "soun").map(seconds);
  return { audio, ...(video ? { video: seconds(video) } : {}) };
}

/** Reading the sound alone, if there is video to leave out. */
async function soundAlone(
  reader: (signal?: AbortSignal) => ChunkReader,
  layout: MovLayout,
  { moov, tracks, fragments, keptIds }: { moov: Buffer; tracks: Track[]; fragments: Fragment[]; keptIds: Set<number> },
  file: { chunkSize: number; length: number },
): Promise<AudioOnly | undefined> {
  if (!keptIds.size || keptIds.size === tracks.length) return undefined;
  const head = layout.ftyp;
  const index = audioIndex(moov, tracks, head.length);
  const read = [
    ...index.spans,
    ...fragments.map((fragment) => ({ start: fragment.start, end: fragment.start + fragment.moof.length })),
    ...fragments.flatMap((fragment) => keptRuns(fragment, keptIds)),
  ];
  // An index pointing outside the file is damage for ffmpeg to name, reading the file as it is.
  if (read.some((span) => span.start < 0 || span.end > file.length)) return undefined;
  const share = chunksTouched(read, file.chunkSize) / Math.ceil(file.length / file.chunkSize);
  const open = (signal: AbortSignal) => Readable.from(audioStream(reader(signal), head, index, fragments, keptIds));
  return { share, open };
}

const keptRuns = (fragment: Fragment, keptIds: Set<number>) =>
  fragment.trafs.filter((traf) => keptIds.has(traf.trackId)).flatMap((traf) => traf.runs.map((run) => run.span));

/** The sound's pieces gathered into writes of about this size: a piece per audio chunk would be a pipe write each. */
const WRITE_BYTES = 256 * 1024;

async function* audioStream(
  reader: ChunkReader,
  head: Buffer,
  index: ReturnType<typeof audioIndex>,
  fragments: Fragment[],
  keptIds: Set<number>,
) {
  yield* gathered(soundPieces(reader, head, index, fragments, keptIds), WRITE_BYTES);
}

/**
 * `pieces` copied into buffers of `size` bytes (but the last). Copied, not kept: a piece is
 * a view of the GridFS chunk it came from, and keeping views until a buffer fills would keep
 * hundreds of those chunks alive (a second of sound spans ~40 chunks of a 48 Mbit/s video).
 */
export async function* gathered(pieces: AsyncIterable<Uint8Array>, size: number) {
  let buffer = Buffer.allocUnsafe(size);
  let filled = 0;
  for await (const piece of pieces) {
    for (let at = 0; at < piece.byteLength; ) {
      const take = Math.min(size - filled, piece.byteLength - at);
      buffer.set(piece.subarray(at, at + take), filled);
      filled += take;
      at += take;
      if (filled < size) continue;
      yield buffer;
      buffer = Buffer.allocUnsafe(size); // the one yielded is the pipe's now
      filled = 0;
    }
  }
  if (filled) yield buffer.subarray(0, filled);
}

async function* soundPieces(
  reader: ChunkReader,
  head: Buffer,
  index: ReturnType<typeof audioIndex>,
  fragments: Fragment[],
  keptIds: Set<number>,
) {
  yield head;
  yield index.moov;
  yield index.mdatHeader;
  yield* reader.spans(index.spans);
  let written = head.length + index.moov.length + index.mdatHeader.length + index.bytes;
  for (const fragment of fragments) {
    const kept = keptFragment(fragment, written, keptIds);
    yield kept.moof;
    yield kept.mdatHeader;
    for (const span of kept.spans) {
      const held = fragment.held.get(span.start);
      if (held) yield held;
      else yield* reader.spans([span]);
    }
    written += kept.moof.length + kept.mdatHeader.length + kept.bytes;
  }
}

/** An `mdat` header for `bytes` of samples. */
function mdatHeader(bytes: number): Buffer {
  if (bytes + 8 <= 0xffffffff) {
    const header = Buffer.alloc(8);
    header.writeUInt32BE(bytes + 8);
    header.write("mdat", 4, "latin1");
    return header;
  }
  const header = Buffer.alloc(16);
  header.writeUInt32BE(1);
  header.write("mdat", 4, "latin1");
  header.writeBigUInt64BE(BigInt(bytes + 16), 8);
  return header;
}

/**
 * The index without its video tracks, for a stream that starts with `before` bytes, and
 * the kept chunks' spans in the file's order, which the `mdat` after it holds.
 */
function audioIndex(moov: Buffer, tracks: Track[], before: number) {
  const copy = Buffer.from(moov);
  const dropped = new Set(tracks.filter((track) => !isKept(track.handler)).map((track) => track.box.start));
  const [outer] = childBoxes(copy, 0, copy.length);
  const children = childBoxes(copy, outer!.body, outer!.end).filter((child) => !dropped.has(child.start));
  const size = 8 + children.reduce((sum, child) => sum + child.end - child.start, 0);
  const entries = tracks
    .filter((track) => isKept(track.handler))
    .flatMap((track) =>
      track.chunks.map((span, entry) => ({
        span,
        at: track.offsets.at + entry * track.offsets.width,
        width: track.offsets.width,
      })),
    )
    .sort((a, b) => a.span.start - b.span.start);
  const bytes = entries.reduce((sum, entry) => sum + entry.span.end - entry.span.start, 0);
  const header = mdatHeader(bytes);
  let offset = before + size + header.length;
  let previousEnd = 0;
  for (const entry of entries) {
    if (entry.span.start < previousEnd) throw new Unhandled("chunks that overlap");
    previousEnd = entry.span.end;
    if (entry.width === 4 && offset > 0xffffffff) throw new Unhandled("an offset past 32 bits");
    if (entry.width === 4) copy.writeUInt32BE(offset, entry.at);
    else copy.writeBigUInt64BE(BigInt(offset), entry.at);
    offset += entry.span.end - entry.span.start;
  }
  const moovOut = box(
    "moov",
    children.map((child) => copy.subarray(child.start, child.end)),
  );
  return { moov: moovOut, mdatHeader: header, spans: entries.map((entry) => entry.span), bytes };
}

/**
 * A fragment without its video track fragments, to be written at `position` of the
 * stream: its header with every run's offset (and base) rewritten, and the runs' spans.
 */
function keptFragment({ moof, trafs }: Fragment, position: number, keptIds: Set<number>) {
  const copy = Buffer.from(moof);
  const [outer] = childBoxes(copy, 0, copy.length);
  const kept = trafs.filter((traf) => keptIds.has(traf.trackId));
  const keptStarts = new Set(kept.map((traf) => traf.box.start));
  const children = childBoxes(copy, outer!.body, outer!.end).filter(
    (child) => child.type !== "traf" || keptStarts.has(child.start),
  );
  const size = 8 + children.reduce((sum, child) => sum + child.end - child.start, 0);
  const bytes = kept.flatMap((traf) => traf.runs).reduce((sum, run) => sum + run.span.end - run.span.start, 0);
  const header = mdatHeader(bytes);
  let data = position + size + header.length; // where the next run's samples go
  for (const [index, traf] of kept.entries()) {
    // The base each run counts from: stated (rewritten to the new fragment), the fragment, or where data went on.
    const base = traf.baseAt !== undefined || traf.baseIsMoof || index === 0 ? position : data;
    if (traf.baseAt !== undefined) copy.writeBigUInt64BE(BigInt(position), traf.baseAt);
    for (const run of traf.runs) {
      copy.writeInt32BE(data - base, run.offsetAt);
      data += run.span.end - run.span.start;
    }
  }
  const moofOut = box(
    "moof",
    children.map((child) => copy.subarray(child.start, child.end)),
  );
  return { moof: moofOut, mdatHeader: header, spans: kept.flatMap((traf) => traf.runs.map((run) => run.span)), bytes };
}

/** How many chunks of `chunkSize` the spans touch. */
function chunksTouched(spans: Span[], chunkSize: number): number {
  const touched = new Set<number>();
  for (const { start, end } of spans)
    for (let n = Math.floor(start / chunkSize); n <= Math.floor((end - 1) / chunkSize) && end > start; n++)
      touched.add(n);
  return touched.size;
}
