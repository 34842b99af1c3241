// The cover's frame out of a Matroska/WebM file without reading up to it (as converter/
// keyframe.ts does for MP4): the cover's ffmpeg is fed the file's header (everything before
// the first Cluster, the Segment's size made "unknown") and the Cluster that holds the
// cover's time with the one before it, found by reading each Cluster's first bytes (its ID,
// size and Timecode) from the first on. Clusters run a second or a few each, so a cover a
// minute in costs a few dozen small reads and two clusters, where the pipe read a tenth of
// the file. The cover's time is then counted from the first of the two.
import type { ChunkReader } from "./chunk-reader.ts";
import { ebmlHeader, MATROSKA, UNKNOWN_SIZE, uint } from "./matroska-sound.ts";
import type { Span } from "./mp4-index.ts";

/** A header (all before the first cluster) larger than this (attachments, say): the pipe as before. */
const MAX_HEAD_BYTES = 16 * 1024 * 1024;
/** More clusters than this before the time: the pipe as before. */
const MAX_CLUSTERS = 4096;

export interface MatroskaCover {
  /** The file's header, its Segment's size unknown. */
  head: Buffer;
  /** The cluster holding the time. */
  cluster: Span;
  /** The cover's time counted from the cluster's start. */
  atSec: number;
}

/** The header and the cluster at `atSec` of the Matroska file `reader` reads; null where the file is not the plain kind. */
export async function matroskaCover(reader: ChunkReader, length: number, atSec: number): Promise<MatroskaCover | null> {
  const headerAt = async (at: number) => ebmlHeader(await reader.read(at, Math.min(length, at + 16)), 0);
  const ebml = await headerAt(0);
  if (ebml?.id !== MATROSKA.ebml || ebml.size === undefined) return null;
  const segmentAt = ebml.length + ebml.size;
  const segment = await headerAt(segmentAt);
  if (segment?.id !== MATROSKA.segment) return null;
  const children = segmentAt + segment.length;
  let at = children;
  let scale = 1_000_000; // TimecodeScale, ns per unit
  for (;;) {
    const child = await headerAt(at);
    if (!child || child.size === undefined || at > MAX_HEAD_BYTES) return null;
    if (child.id === MATROSKA.cluster) break;
    if (child.id === MATROSKA.info)
      scale = timecodeScale(await reader.read(at + child.length, at + child.length + child.size)) ?? scale;
    at += child.length + child.size;
  }
  const cluster = await clusterAt(reader, length, at, (atSec * 1e9) / scale);
  if (!cluster) return null;
  const head = Buffer.concat([
    await reader.read(0, segmentAt + segment.length - segment.sizeLength),
    UNKNOWN_SIZE,
    await reader.read(children, at),
  ]);
  return { head, cluster: cluster.span, atSec: atSec - (cluster.time * scale) / 1e9 };
}

/**
 * The last cluster from `first` on whose Timecode is at or before `time` (in the file's units),
 * with the one before it. Clusters need not start at keyframes: the keyframe at or before the
 * time may be in the cluster before. Where it is in neither, the cover's ffmpeg finds no frame
 * and the cover is taken from the stream (converter/encode.ts).
 */
async function clusterAt(reader: ChunkReader, length: number, first: number, time: number) {
  let found: { span: Span; time: number } | undefined;
  let before: typeof found;
  for (let at = first, count = 0; at < length && count < MAX_CLUSTERS; count++) {
    const bytes = await reader.read(at, Math.min(length, at + 64));
    const cluster = ebmlHeader(bytes, 0);
    if (cluster?.id !== MATROSKA.cluster) break; // Cues, Tags: the clusters are over
    if (cluster.size === undefined) return null;
    const clusterTime = timecodeOf(bytes, cluster.length);
    if (clusterTime === undefined) return null;
    if (clusterTime > time) break;
    before = found;
    found = { span: { start: at, end: at + cluster.length + cluster.size }, time: clusterTime };
    at += cluster.length + cluster.size;
  }
  if (!found || found.span.end > length) return null;
  return before ? { span: { start: before.span.start, end: found.span.end }, time: before.time } : found;
}

/** A cluster's Timecode, its first child but for a CRC-32 or Void that ffmpeg may write before it. */
function timecodeOf(bytes: Uint8Array, at: number): number | undefined {
  for (let skipped = 0; skipped < 3; skipped++) {
    const child = ebmlHeader(bytes, at);
    if (!child || child.size === undefined) return undefined;
    const body = at + child.length;
    if (child.id === MATROSKA.timecode) {
      if (body + child.size > bytes.length) return undefined;
      return uint(bytes, body, body + child.size);
    }
    if (child.id !== CRC32 && child.id !== VOID) return undefined;
    at = body + child.size;
  }
  return undefined;
}

const CRC32 = 0xbf;
const VOID = 0xec;

/** TimecodeScale from the Info element's body, if it says. */
function timecodeScale(info: Uint8Array): number | undefined {
  for (let at = 0; at < info.length; ) {
    const field = ebmlHeader(info, at);
    if (!field || field.size === undefined) return undefined;
    const body = at + field.length;
    if (field.id === MATROSKA.timecodeScale) return uint(info, body, body + field.size);
    at = body + field.size;
  }
  return undefined;
}
