// A Matroska/WebM file's sound without its pictures, as the bytes come out of GridFS: what
// the audio's ffmpeg reads, so that neither this process nor ffmpeg moves the video only to
// throw it away (converter/audio-only.ts does the same for MP4). The file is read as it is
// stored, element by element (EBML: an ID, a size, a body), and passed on but for:
// - the Segment and each Cluster, whose sizes change, written with the "unknown" size that
//   live streams use (ffmpeg ends a cluster where the next one starts);
// - in a Cluster, the blocks of video tracks (SimpleBlock, BlockGroup) and the positions
//   (Position, PrevSize), which no longer hold, left out;
// - what follows the clusters (Cues, Tags: where things were, for a reader that seeks).
// Anything it cannot follow (an element of unknown size inside, a block without its track)
// stops the stream with NotStreamable: the job is converted from a copy instead.
import { NotStreamable } from "./errors.ts";

/** The element IDs read here and in converter/matroska-cover.ts. */
export const MATROSKA = {
  ebml: 0x1a45dfa3,
  segment: 0x18538067,
  info: 0x1549a966,
  timecodeScale: 0x2ad7b1,
  timecode: 0xe7,
  cluster: 0x1f43b675,
  simpleBlock: 0xa3,
  blockGroup: 0xa0,
  block: 0xa1,
  position: 0xa7,
  prevSize: 0xab,
  tracks: 0x1654ae6b,
  trackEntry: 0xae,
  trackNumber: 0xd7,
  trackType: 0x83,
};
/** An element size of all ones: "unknown", as a live stream writes its Segment and Clusters. */
export const UNKNOWN_SIZE = Buffer.from([0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
const VIDEO = 1;
/** The track list is held whole to read it; a real one is a few hundred bytes. */
const MAX_TRACKS_BYTES = 1024 * 1024;

interface Header {
  id: number;
  /** The body's size; undefined for "unknown". */
  size: number | undefined;
  /** The header's own length, and its size field's. */
  length: number;
  sizeLength: number;
}

/** An EBML variable-length integer at `at`: its value (with or without the length marker) and length. */
function vint(bytes: Uint8Array, at: number, keepMarker: boolean): { value: number; length: number } | undefined {
  const first = bytes[at];
  if (first === undefined || first === 0) return undefined;
  const length = Math.clz32(first) - 23; // 1 for 0b1xxxxxxx, … 8 for 0b00000001
  if (at + length > bytes.length) return undefined;
  let value = keepMarker ? first : first & (0xff >> length);
  let allOnes = value === 0xff >> length;
  for (let index = 1; index < length; index++) {
    value = value * 256 + bytes[at + index]!;
    allOnes &&= bytes[at + index] === 0xff;
  }
  return { value: !keepMarker && allOnes ? -1 : value, length };
}

/** The element header at `at`, or undefined if `bytes` does not hold all of it yet. */
function header(bytes: Uint8Array, at: number): Header | undefined {
  const id = vint(bytes, at, true);
  const size = id && vint(bytes, at + id.length, false);
  if (!id || !size) return undefined;
  if (id.length > 4) throw new NotStreamable("a malformed Matroska element");
  const known = size.value < 0 ? undefined : size.value;
  return { id: id.value, size: known, length: id.length + size.length, sizeLength: size.length };
}

/** The element header at `at`; undefined if incomplete or malformed. */
export function ebmlHeader(bytes: Uint8Array, at: number): Header | undefined {
  try {
    return header(bytes, at);
  } catch {
    return undefined;
  }
}

/** The numbers of the video tracks, from the Tracks element's body. */
export function videoTracks(tracks: Uint8Array): Set<number> {
  const video = new Set<number>();
  for (const entry of children(tracks, 0, tracks.length)) {
    if (entry.id !== MATROSKA.trackEntry) continue;
    let number: number | undefined;
    let type: number | undefined;
    for (const field of children(tracks, entry.body, entry.end)) {
      if (field.id === MATROSKA.trackNumber) number = uint(tracks, field.body, field.end);
      if (field.id === MATROSKA.trackType) type = uint(tracks, field.body, field.end);
    }
    if (number !== undefined && type === VIDEO) video.add(number);
  }
  return video;
}

function* children(bytes: Uint8Array, start: number, end: number) {
  for (let at = start; at < end; ) {
    const found = header(bytes, at);
    if (!found || found.size === undefined) throw new NotStreamable("a malformed Matroska header");
    const body = at + found.length;
    yield { id: found.id, body, end: body + found.size };
    at = body + found.size;
  }
}

/** A big-endian unsigned integer element's value. */
export const uint = (bytes: Uint8Array, start: number, end: number) =>
  bytes.subarray(start, end).reduce((value, byte) => value * 256 + byte, 0);

/**
 * The sound of the Matroska bytes `source` (in order, from the file's first byte): the
 * elements as stored, but what the file's header at the top says.
 */
export async function* matroskaSound(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const parser = new SoundParser();
  for await (const chunk of source) yield* parser.push(chunk);
  parser.end();
}

/** Where the parser is: among the Segment's children, in a Cluster, or passing a body on. */
type State =
  | { at: "top" }
  | { at: "cluster"; end: number | undefined }
  | { at: "body"; left: number; keep: boolean; then: State };

class SoundParser {
  #pending = new Uint8Array(0); // bytes of a header (or a Tracks body, or a block's start) not yet whole
  #offset = 0; // the file offset of #pending's first byte
  #state: State = { at: "top" };
  #video: Set<number> | undefined;
  #inSegment = false;
  #seenCluster = false;

  *push(chunk: Uint8Array): Generator<Uint8Array> {
    const bytes = this.#pending.length ? concat(this.#pending, chunk) : chunk;
    let at = 0;
    for (;;) {
      const state = this.#state;
      if (state.at === "body") {
        const take = Math.min(state.left, bytes.length - at);
        if (state.keep && take) yield bytes.subarray(at, at + take);
        at += take;
        state.left -= take;
        if (state.left > 0) break;
        this.#state = state.then;
        continue;
      }
      const step = this.#element(bytes, at);
      if (!step) break; // wait for more bytes
      for (const part of step.out) yield part;
      at = step.next;
    }
    this.#offset += at;
    this.#pending = bytes.subarray(at).slice(); // a copy: the chunk it came from can go
  }

  end() {
    if (this.#state.at === "body" && this.#state.left > 0) throw new NotStreamable("the Matroska file ends midway");
  }

  /** One element starting at `at`: what to pass on, and where the next byte to read is; undefined: more bytes first. */
  #element(bytes: Uint8Array, at: number): { out: Uint8Array[]; next: number } | undefined {
    const found = header(bytes, at);
    if (!found) return undefined;
    const headerBytes = bytes.subarray(at, at + found.length);
    const body = at + found.length;
    const fileAt = this.#offset + at;
    if (this.#state.at === "cluster" && this.#state.end !== undefined && fileAt >= this.#state.end)
      this.#state = { at: "top" }; // the cluster ended
    if (!this.#inSegment) {
      if (found.id !== MATROSKA.segment) return this.#pass(headerBytes, body, found, true, this.#state); // the EBML header
      this.#inSegment = true;
      return { out: [idBytes(bytes, at), UNKNOWN_SIZE], next: body };
    }
    if (found.id === MATROSKA.cluster) {
      if (!this.#video) throw new NotStreamable("a Matroska cluster before the tracks");
      this.#seenCluster = true;
      const end = found.size === undefined ? undefined : fileAt + found.length + found.size;
      this.#state = { at: "cluster", end };
      return { out: [idBytes(bytes, at), UNKNOWN_SIZE], next: body };
    }
    if (found.size === undefined) throw new NotStreamable("a Matroska element of unknown size");
    if (this.#state.at === "cluster") return this.#inCluster(bytes, at, found, headerBytes);
    if (found.id === MATROSKA.tracks) {
      if (found.size > MAX_TRACKS_BYTES) throw new NotStreamable("a Matroska track list too large to hold");
      if (bytes.length < body + found.size) return undefined; // held whole: it is small
      this.#video = videoTracks(bytes.subarray(body, body + found.size));
      return { out: [bytes.subarray(at, body + found.size)], next: body + found.size };
    }
    // Before the first cluster everything is kept; after the clusters (Cues, Tags) nothing.
    return this.#pass(headerBytes, body, found, !this.#seenCluster, this.#state);
  }

  /** A cluster's child: its timecode and the sound's blocks kept, the video's blocks and positions left out. */
  #inCluster(bytes: Uint8Array, at: number, found: Header, headerBytes: Uint8Array) {
    const body = at + found.length;
    if (found.id === MATROSKA.position || found.id === MATROSKA.prevSize)
      return this.#pass(headerBytes, body, found, false, this.#state);
    if (found.id !== MATROSKA.simpleBlock && found.id !== MATROSKA.blockGroup)
      return this.#pass(headerBytes, body, found, true, this.#state);
    const track = this.#blockTrack(bytes, body, found);
    if (track === undefined) return undefined;
    return this.#pass(headerBytes, body, found, !this.#video!.has(track), this.#state);
  }

  /** The track of a SimpleBlock, or of the Block inside a BlockGroup (its first bytes name it). */
  #blockTrack(bytes: Uint8Array, body: number, found: Header): number | undefined {
    let start = body;
    if (found.id === MATROSKA.blockGroup) {
      const inner = header(bytes, body);
      if (!inner) return bytes.length - body >= Math.min(found.size!, 16) ? this.#noBlock() : undefined;
      if (inner.id !== MATROSKA.block) return this.#noBlock();
      start = body + inner.length;
    }
    const track = vint(bytes, start, false);
    if (!track) return bytes.length - start >= 8 ? this.#noBlock() : undefined;
    return track.value;
  }

  #noBlock(): never {
    throw new NotStreamable("a Matroska block group that does not start with its block");
  }

  #pass(headerBytes: Uint8Array, body: number, found: Header, keep: boolean, then: State) {
    this.#state = { at: "body", left: found.size!, keep, then };
    return { out: keep ? [headerBytes] : [], next: body };
  }
}

const idBytes = (bytes: Uint8Array, at: number) => bytes.subarray(at, at + vint(bytes, at, true)!.length);

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a);
  joined.set(b, a.length);
  return joined;
}
