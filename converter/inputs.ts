// What ffmpeg and ffprobe may open: the job's own spooled file, read as the container
// its first bytes were sniffed as (lib/upload.ts, for uploads and links alike), and
// nothing else. Left to guess, ffmpeg scores every demuxer against the content, and a
// text file that sniffs as a video (`<!--free-->` reads as a QuickTime atom) can win as
// a DASH manifest, an HLS playlist or an ffconcat list, which open whatever files or
// URLs they name; image2 patterns are reached the same way. Forcing the demuxer, a
// format allow-list of that one demuxer (which nested opens inherit) and the file
// protocol alone close all of these.
import { BadInput } from "./errors.ts";

/** file-type's video and audio types (what the intake accepts) → the ffmpeg demuxer that reads them. */
const DEMUXERS: Record<string, string> = {
  "video/mp4": "mov",
  "video/quicktime": "mov",
  "video/x-m4v": "mov",
  "video/3gpp": "mov",
  "video/3gpp2": "mov",
  "video/matroska": "matroska",
  "video/webm": "matroska",
  "video/vnd.avi": "avi",
  "video/mp2t": "mpegts",
  "video/x-flv": "flv",
  "video/mpeg": "mpeg",
  "video/MP1S": "mpeg",
  "video/MP2P": "mpeg",
  "video/ogg": "ogg",
  "video/x-ms-asf": "asf",
  // Audio-only sources (lib/upload.ts AUDIO_TYPES): one demuxer each, none that opens other files.
  "audio/x-m4a": "mov",
  "audio/mp4": "mov",
  "audio/mpeg": "mp3",
  "audio/wav": "wav",
  "audio/flac": "flac",
  "audio/ogg": "ogg",
  "audio/ogg; codecs=opus": "ogg",
};

/** The demuxer for a sniffed type, or undefined for a type no upload can have. */
export const demuxerFor = (contentType: string): string | undefined => DEMUXERS[contentType];

/**
 * ffmpeg's and ffprobe's options for the input (before `-i`, or before the path for
 * ffprobe): the spooled file (`file`) or the bytes on stdin (`pipe`, converter/source.ts),
 * and that protocol alone. A type with no demuxer here is refused as bad input.
 */
export function inputOptions(contentType: string, protocol: "file" | "pipe" = "file"): string[] {
  const demuxer = demuxerFor(contentType);
  if (!demuxer) throw new BadInput("the file is not a video we can read (not a container we convert)");
  return ["-f", demuxer, "-format_whitelist", demuxer, "-protocol_whitelist", protocol];
}
