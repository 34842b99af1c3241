// An MP4/MOV's top-level boxes, and its index (`moov`) made to sit before the samples:
// what qt-faststart does to a file, done on the fly. The index's chunk offset tables
// (`stco`, `co64`) point at bytes in the file; moving the index in front of the samples
// moves every sample by the index's size, so each offset gains that much. Only a plain
// layout is relocated: one index, the last box, every offset inside the samples before it,
// and offsets that still fit their table. Anything else answers null, and the file is
// spooled as before (converter/source.ts): a hostile or odd file costs a copy, never a
// wrong read. ffmpeg still reads the result with the forced `mov` demuxer.

export interface Box {
  type: string;
  start: number;
  size: number;
}

export interface MovLayout {
  /** The top-level boxes, up to the first fragment (`moof`) if there are fragments. */
  boxes: Box[];
  /** The first box of samples. */
  mdat: Box;
  moov: Box;
  /** Where the first fragment starts, in a fragmented file (its index first, then `moof` + `mdat` pairs). */
  firstFragment?: number;
  /** The file's type box (`ftyp`) as stored, or empty: its brand tells ffmpeg how to read the index. */
  ftyp: Buffer;
  /** The file's length. */
  length: number;
}

/** More top-level boxes than this is not a camera's file: spooled. */
const MAX_BOXES = 64;
/** The boxes inside `moov` that hold others on the way to the chunk offset tables. */
const CONTAINERS = new Set(["moov", "trak", "mdia", "minf", "stbl"]);

/**
 * The top-level boxes of a file of `length` bytes, read header by header (a box's header
 * is at most 16 bytes) up to the first fragment; null unless there is one `moov` and an
 * `mdat` and the sizes add up. A fragmented file's fragments are not walked here: there
 * may be thousands, and its index comes first anyway.
 */
export async function movLayout(
  length: number,
  readRange: (start: number, end: number) => Promise<Buffer>,
  headBytes: number,
): Promise<MovLayout | null> {
  const head = await readRange(0, Math.min(length, headBytes));
  const boxes: Box[] = [];
  let firstFragment: number | undefined;
  for (let at = 0; at < length; ) {
    if (boxes.length >= MAX_BOXES || at + 8 > length) return null;
    const header = at + 16 <= head.length ? head.subarray(at, at + 16) : await readRange(at, Math.min(length, at + 16));
    const box = boxHeader(header, at, length);
    if (!box) return null;
    if (box.type === "moof") {
      firstFragment = at;
      break;
    }
    boxes.push(box);
    at += box.size;
  }
  const moovs = boxes.filter((box) => box.type === "moov");
  const mdat = boxes.find((box) => box.type === "mdat");
  if (moovs.length !== 1) return null;
  const type = boxes.find((box) => box.type === "ftyp" && box.start + box.size <= head.length);
  const ftyp = type ? Buffer.from(head.subarray(type.start, type.start + type.size)) : Buffer.alloc(0);
  if (firstFragment !== undefined) {
    // The samples of a fragmented file may all be in its fragments: the first fragment's stand for the `mdat`.
    const samples = mdat ?? { type: "moof", start: firstFragment, size: 0 };
    return moovs[0]!.start < samples.start
      ? { boxes, mdat: samples, moov: moovs[0]!, firstFragment, ftyp, length }
      : null;
  }
  if (!mdat) return null;
  return { boxes, mdat, moov: moovs[0]!, ftyp, length };
}

/** A box's type and size from its header at `start` (`header` holds its first bytes); null if malformed. */
export function boxHeader(header: Buffer, start: number, end: number): Box | null {
  if (header.length < 8) return null;
  let size = header.readUInt32BE(0);
  const type = header.toString("latin1", 4, 8);
  if (size === 1) {
    if (header.length < 16) return null;
    size = Number(header.readBigUInt64BE(8));
  } else if (size === 0) size = end - start; // to the end of the file
  if (size < 8 || start + size > end || !/^[\x20-\x7e]{4}$/.test(type)) return null;
  return { type, start, size };
}

/**
 * `moov` (the index's bytes) with every chunk offset moved by its own size, to be sent
 * right before the first `mdat`; null when the layout is not the plain one this handles.
 */
export function relocatedIndex(moov: Buffer, layout: MovLayout): Buffer | null {
  const last = layout.boxes.at(-1);
  if (last !== layout.moov || layout.moov.start < layout.mdat.start) return null;
  const index = Buffer.from(moov); // a copy: the offsets are rewritten in place
  const samples = { start: layout.mdat.start, end: layout.moov.start };
  return patchOffsets(index, 0, index.length, layout.moov.size, samples) ? index : null;
}

/** Walks the boxes in [start, end) of `index`, moving the offsets in every `stco` and `co64`. */
function patchOffsets(
  index: Buffer,
  start: number,
  end: number,
  shift: number,
  samples: { start: number; end: number },
): boolean {
  for (let at = start; at < end; ) {
    const box = boxHeader(index.subarray(at, Math.min(end, at + 16)), at, end);
    if (!box) return false;
    const headerBytes = index.readUInt32BE(at) === 1 ? 16 : 8;
    const body = { start: at + headerBytes, end: at + box.size };
    if (box.type === "cmov") return false; // a compressed index: not rewritten here
    if (CONTAINERS.has(box.type)) {
      if (!patchOffsets(index, body.start, body.end, shift, samples)) return false;
    } else if (box.type === "stco" || box.type === "co64") {
      if (!patchTable(index, body, box.type === "co64" ? 8 : 4, shift, samples)) return false;
    }
    at += box.size;
  }
  return true;
}

/** One chunk offset table: version and flags, a count, then the offsets (4 or 8 bytes each). */
function patchTable(
  index: Buffer,
  body: { start: number; end: number },
  width: 4 | 8,
  shift: number,
  samples: { start: number; end: number },
): boolean {
  if (body.end - body.start < 8) return false;
  const count = index.readUInt32BE(body.start + 4);
  if (body.start + 8 + count * width > body.end) return false;
  for (let entry = 0, at = body.start + 8; entry < count; entry++, at += width) {
    const offset = width === 4 ? index.readUInt32BE(at) : Number(index.readBigUInt64BE(at));
    if (offset < samples.start || offset >= samples.end) return false;
    const moved = offset + shift;
    if (width === 4) {
      if (moved > 0xffffffff) return false; // would need a co64: spooled instead
      index.writeUInt32BE(moved, at);
    } else index.writeBigUInt64BE(BigInt(moved), at);
  }
  return true;
}
