// How long an MPEG-TS file's sound lasts, from its first and last bytes. A transport stream
// has no header that says (ffprobe reading it from a pipe reports no length), but every
// audio packet that starts a frame carries its time (the PES header's PTS, 90 kHz): the
// last one read near the end, less the first one read near the start, is the length. So a
// transport stream is piped into ffmpeg like the others (converter/source.ts) instead of
// being copied to disk first; without a time at both ends it is still copied.

const PACKET = 188;
const SYNC = 0x47;
/** PTS wrap around at 2^33 ticks (~26.5 h). */
const WRAP = 2 ** 33;
const TICKS_PER_SECOND = 90_000;

/** Seconds from the first audio time in `head` to the last in `tail`; undefined if either has none. */
export function tsAudioLength(head: Uint8Array, tail: Uint8Array): number | undefined {
  const first = audioTimes(head)[0];
  const last = audioTimes(tail).at(-1);
  if (first === undefined || last === undefined) return undefined;
  const ticks = last >= first ? last - first : last + WRAP - first;
  return ticks / TICKS_PER_SECOND;
}

/** The PTS of every audio PES header that starts in `bytes`, in order. */
function audioTimes(bytes: Uint8Array): number[] {
  const start = syncOffset(bytes);
  if (start === undefined) return [];
  const times: number[] = [];
  for (let at = start; at + PACKET <= bytes.length; at += PACKET) {
    if (bytes[at] !== SYNC) break; // out of step: what follows is not read
    const time = packetTime(bytes.subarray(at, at + PACKET));
    if (time !== undefined) times.push(time);
  }
  return times;
}

/** Where packets start: the first offset with the sync byte there and in the next four packets. */
function syncOffset(bytes: Uint8Array): number | undefined {
  for (let at = 0; at < PACKET && at + 5 * PACKET <= bytes.length; at++) {
    let aligned = true;
    for (let packet = 0; packet < 5 && aligned; packet++) aligned = bytes[at + packet * PACKET] === SYNC;
    if (aligned) return at;
  }
  return undefined;
}

/** The PTS of the audio PES header this packet starts, if it starts one. */
function packetTime(packet: Uint8Array): number | undefined {
  const startsUnit = (packet[1]! & 0x40) !== 0;
  const control = (packet[3]! >> 4) & 0x3;
  if (!startsUnit || !(control & 0x1)) return undefined; // no payload start here
  const payload = 4 + (control & 0x2 ? 1 + packet[4]! : 0); // past the adaptation field
  const pes = packet.subarray(payload);
  if (pes.length < 14 || pes[0] !== 0 || pes[1] !== 0 || pes[2] !== 1) return undefined;
  const stream = pes[3]!;
  const audio = (stream >= 0xc0 && stream <= 0xdf) || stream === 0xbd; // MPEG audio; private stream 1 (AC-3, …)
  if (!audio || !(pes[7]! & 0x80)) return undefined; // no PTS
  const p = pes.subarray(9, 14);
  return (
    ((p[0]! >> 1) & 0x07) * 2 ** 30 + // bits 32..30
    ((p[1]! << 7) | (p[2]! >> 1)) * 2 ** 15 + // bits 29..15
    ((p[3]! << 7) | (p[4]! >> 1)) // bits 14..0
  );
}
