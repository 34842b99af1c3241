// What ffprobe says of a spooled source: its audio tracks, its own tags and chapters, the
// picture a cover can come from, or why it cannot be converted at all (BadInput, with a
// reason a person understands). ffprobe runs here rather than through fluent-ffmpeg, whose
// ffprobe cannot be stopped: it is killed when the message's signal is aborted or after
// PROBE_TIMEOUT_MS. What to make of it (which track, which span) is converter/plan.ts's.
import { stat } from "node:fs/promises";
import type { Readable } from "node:stream";
import type { AudioTrack } from "../lib/options.ts";
import { BadInput } from "./errors.ts";
import { inputOptions } from "./inputs.ts";
import { PROBE_TIMEOUT_MS } from "./limits.ts";
import { feed } from "./source.ts";

export interface SourceInfo {
  /** The audio tracks in order: the option `track` N is tracks[N]. */
  tracks: AudioTrack[];
  /** The track marked default, else the first. */
  defaultTrack: number;
  /** Where each audio track begins, in seconds after the container's start (what `-ss` counts from). */
  trackOffsets: number[];
  /** The source's own tags (a video's title, an audio file's artist and album). */
  tags: { title?: string; artist?: string; album?: string };
  /** Chapters, in seconds after the container's start. */
  chapters: { startSec: number; endSec: number; title?: string }[];
  /** The first real video stream (not a cover picture): a frame of it can be the cover. */
  video?: { stream: number; durationSec?: number };
  /** A picture the source carries as its cover (an MP3's APIC, an M4A's or FLAC's art). */
  picture?: { stream: number; codec: string };
}

export interface ProbeOptions {
  /** The type the source was sniffed as: it names the one demuxer ffprobe may use (converter/inputs.ts). */
  contentType: string;
  /** Aborting it kills ffprobe; `probeSource` then rejects with the signal's reason. */
  signal: AbortSignal;
}

type Tags = Record<string, string | undefined>;
interface ProbedStream {
  index: number;
  codec_type?: string;
  codec_name?: string;
  channels?: number;
  duration?: string;
  start_time?: string;
  disposition?: { default?: number; attached_pic?: number };
  tags?: Tags;
}
interface Probed {
  streams?: ProbedStream[];
  format?: { duration?: string; start_time?: string; tags?: Tags };
  chapters?: { start_time?: string; end_time?: string; tags?: Tags }[];
}

const NOT_MEDIA = "the file is not a video we can read (damaged, truncated or not a media file)";

/** What the source holds: a spooled file, or the stored bytes as a stream into ffprobe's stdin (converter/source.ts). */
export async function probeSource(input: string | Readable, options: ProbeOptions): Promise<SourceInfo> {
  if (typeof input === "string" && (await stat(input)).size === 0) throw new BadInput("the file is empty");
  const data = await ffprobe(input, options);
  const streams = data.streams ?? [];
  const audio = streams.filter((stream) => stream.codec_type === "audio");
  const kind = options.contentType.startsWith("audio/") ? "file" : "video";
  if (audio.length === 0) throw new BadInput(`the ${kind} has no audio track`, "no_audio");
  const formatStart = seconds(data.format?.start_time) ?? 0;
  const formatDuration = seconds(data.format?.duration);
  const tracks = audio.map((stream, index) => audioTrack(stream, index, formatDuration));
  const isPicture = (stream: ProbedStream) => stream.codec_type === "video" && stream.disposition?.attached_pic === 1;
  const video = streams.find((stream) => stream.codec_type === "video" && !isPicture(stream));
  const picture = streams.find(isPicture);
  return {
    tracks,
    defaultTrack: Math.max(
      0,
      audio.findIndex((stream) => stream.disposition?.default === 1),
    ),
    trackOffsets: audio.map((stream) => (seconds(stream.start_time) ?? formatStart) - formatStart),
    tags: {
      title: tag(data.format?.tags, "title"),
      artist: tag(data.format?.tags, "artist"),
      album: tag(data.format?.tags, "album"),
    },
    chapters: (data.chapters ?? []).map((chapter) => ({
      startSec: (seconds(chapter.start_time) ?? 0) - formatStart,
      endSec: (seconds(chapter.end_time) ?? 0) - formatStart,
      title: tag(chapter.tags, "title"),
    })),
    ...(video ? { video: { stream: video.index, durationSec: streamSeconds(video, formatDuration) } } : {}),
    ...(picture ? { picture: { stream: picture.index, codec: picture.codec_name ?? "" } } : {}),
  };
}

function audioTrack(stream: ProbedStream, index: number, formatDuration?: number): AudioTrack {
  const track: AudioTrack = {
    index,
    codec: stream.codec_name ?? "unknown",
    channels: stream.channels ?? 0,
    durationSec: Math.round((streamSeconds(stream, formatDuration) ?? 0) * 1000) / 1000,
  };
  const language = tag(stream.tags, "language");
  const title = tag(stream.tags, "title");
  if (language && language !== "und") track.language = language;
  if (title) track.title = title;
  return track;
}

/**
 * A stream's length: its own, else the container's (Matroska streams have none), else its
 * DURATION tag (`hh:mm:ss.nnnnnnnnn`). The container's comes before the tag, as it always
 * has: a header that understates the length is caught by ffmpeg's time budget.
 */
function streamSeconds(stream: ProbedStream, formatDuration: number | undefined): number | undefined {
  const own = seconds(stream.duration) || formatDuration;
  if (own) return own;
  const match = /^(\d+):(\d+):(\d+(?:\.\d+)?)$/.exec(tag(stream.tags, "duration") ?? "");
  return match ? Number(match[1]) * 3600 + Number(match[2]) * 60 + Number(match[3]) : undefined;
}

const seconds = (text: string | undefined): number | undefined => {
  const value = Number(text);
  return text !== undefined && Number.isFinite(value) ? value : undefined;
};

/** A tag by name whatever its case (MP4 says `title`, Vorbis comments `TITLE`); blank is none. */
function tag(tags: Tags | undefined, name: string): string | undefined {
  for (const [key, value] of Object.entries(tags ?? {})) if (key.toLowerCase() === name && value?.trim()) return value;
  return undefined;
}

async function ffprobe(input: string | Readable, { contentType, signal }: ProbeOptions): Promise<Probed> {
  signal.throwIfAborted();
  const timeout = AbortSignal.timeout(PROBE_TIMEOUT_MS);
  const piped = typeof input !== "string";
  const command = [process.env.FFPROBE_PATH || "ffprobe", "-v", "error", "-print_format", "json"];
  command.push(
    "-show_streams",
    "-show_format",
    "-show_chapters",
    ...inputOptions(contentType, piped ? "pipe" : "file"),
  );
  command.push(piped ? "pipe:0" : input);
  const stop = AbortSignal.any([signal, timeout]);
  const child = Bun.spawn(command, {
    stdin: piped ? "pipe" : "ignore",
    stdout: "pipe",
    stderr: "ignore",
    signal: stop,
  });
  const feeding = piped ? feed(input, child.stdin as Bun.FileSink, child.exited) : null;
  const [code, out, fed] = await Promise.all([child.exited, new Response(child.stdout).text(), feeding]);
  if (signal.aborted) throw signal.reason;
  if (fed) throw fed; // the store, not the file
  if (timeout.aborted) throw new BadInput(`the file could not be read within ${PROBE_TIMEOUT_MS / 1000} s`);
  if (code !== 0) throw new BadInput(NOT_MEDIA);
  try {
    return JSON.parse(out) as Probed;
  } catch {
    throw new BadInput(NOT_MEDIA);
  }
}
