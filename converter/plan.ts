// What a job's conversion will be, from its options (lib/options.ts; none on jobs from
// before options: the defaults) and what the probe found: which track, which span, the
// tags, the chapters on the MP3's timeline, where the cover comes from, and the options as
// applied (written back on the job). A track that does not exist, a start past the end, or
// a span longer than MAX_AUDIO_SECONDS is bad input, in words.
//
// ffmpeg starts before the probe answers (converter/encode.ts), with `guessAudio`: the same
// settings but for what only the probe knows (the default track, an audio track that starts
// late). When the plan's settings differ, ffmpeg is run again with them.
import type { ConverterConfig } from "../converter.ts";
import { mp3Filename } from "../lib/files.ts";
import type { Job } from "../lib/jobs.ts";
import { type AudioTrack, type ConversionOptions, MAX_TAG_LENGTH } from "../lib/options.ts";
import { BadInput } from "./errors.ts";
import { checkAudioLength, clock } from "./limits.ts";
import type { SourceInfo } from "./probe.ts";
import type { AudioSettings } from "./transcode.ts";

export interface Chapter {
  startSec: number;
  endSec: number;
  title?: string;
}

/** Where the cover comes from: a frame of a video stream at `atSec`, or a picture the source carries. */
export type CoverSource = { stream: number; atSec: number } | { stream: number; codec: string };

export interface Plan {
  audio: AudioSettings;
  /** How long the MP3 will last: the trimmed span of the track. */
  spanSec: number;
  tags: { title: string; artist?: string; album?: string };
  chapters: Chapter[];
  cover?: CoverSource;
  /** The options as applied, every default filled in: what the job shows. */
  applied: ConversionOptions;
}

type Config = Pick<ConverterConfig, "MP3_QUALITY" | "MP3_BITRATE_KBPS" | "MAX_AUDIO_SECONDS">;

/** A track that starts less than this after the container is taken to start with it (MP4 priming, rounding). */
const OFFSET_TOLERANCE_SEC = 0.1;
/** The cover frame is taken this far into the span (a first frame is often black)... */
const COVER_AT_FRACTION = 0.1;
/** ...but no later than this. */
const COVER_AT_MOST_SEC = 60;

/** ffmpeg's settings from the options alone: the track asked for (else the first), starting with the container. */
export const guessAudio = (options: ConversionOptions = {}, config: Config): AudioSettings =>
  audioSettings(options, config, options.track ?? 0, 0);

function audioSettings(options: ConversionOptions, config: Config, track: number, offsetSec: number): AudioSettings {
  const { start = 0, end, channels, normalize } = options;
  const bitrateKbps = options.bitrate ?? (options.quality === undefined ? config.MP3_BITRATE_KBPS : undefined);
  const settings: AudioSettings = { quality: options.quality ?? config.MP3_QUALITY, track };
  if (bitrateKbps) settings.bitrateKbps = bitrateKbps;
  if (start > 0) settings.seekSec = start + offsetSec;
  if (end !== undefined) settings.durationSec = end - start;
  if (channels) settings.channels = channels;
  if (normalize) settings.normalize = true;
  return settings;
}

/** The whole plan, once the probe has answered; throws BadInput for what cannot be done. */
export function planConversion(job: Pick<Job, "options" | "source">, source: SourceInfo, config: Config): Plan {
  const options = job.options ?? {};
  const track = options.track ?? source.defaultTrack;
  const chosen = source.tracks[track];
  if (!chosen) throw new BadInput(missingTrack(track, source.tracks), "track_missing");
  const { start = 0 } = options;
  if (chosen.durationSec <= 0) throw new BadInput("the audio track is empty", "no_audio");
  if (start >= chosen.durationSec)
    throw new BadInput(
      `the trim starts at ${clock(start)} (${start} s), but the audio lasts only ${clock(chosen.durationSec)} (${chosen.durationSec} s)`,
      "trim",
    );
  if (options.end !== undefined && options.end <= start)
    throw new BadInput(`the trim ends (${options.end} s) before it starts (${start} s)`, "trim"); // the gateway refuses it first
  const end = options.end === undefined ? undefined : Math.min(options.end, chosen.durationSec);
  const spanSec = (end ?? chosen.durationSec) - start;
  checkAudioLength(spanSec, config.MAX_AUDIO_SECONDS);
  const offset = source.trackOffsets[track] ?? 0;
  const audio = audioSettings(options, config, track, Math.abs(offset) < OFFSET_TOLERANCE_SEC ? 0 : offset);
  const tags = {
    title: cleanTag(options.title ?? source.tags.title) ?? mp3Filename(job.source.filename).slice(0, -".mp3".length),
    ...definedTag("artist", options.artist ?? source.tags.artist),
    ...definedTag("album", options.album ?? source.tags.album),
  };
  const cover = options.cover === "none" ? undefined : coverSource(source, offset + start, spanSec);
  const applied: ConversionOptions = {
    ...(audio.bitrateKbps
      ? { bitrate: audio.bitrateKbps as ConversionOptions["bitrate"] }
      : { quality: audio.quality }),
    ...(options.start !== undefined ? { start } : {}),
    ...(end !== undefined ? { end: Math.round(end * 1000) / 1000 } : {}),
    track,
    channels: options.channels ?? (chosen.channels === 1 ? 1 : 2),
    normalize: options.normalize ?? false,
    ...tags,
    cover: cover ? "frame" : "none",
  };
  const chapters = mp3Chapters(source.chapters, offset + start, spanSec);
  return { audio, spanSec, tags, chapters, ...(cover ? { cover } : {}), applied };
}

/** "there is no audio track 2: this file has 2 (0: aac, 2 channels, eng; 1: ac3, 6 channels, “Commentary”)". */
function missingTrack(track: number, tracks: AudioTrack[]): string {
  const described = tracks.map((each) => {
    const words = [`${each.index}: ${each.codec}`, `${each.channels} channel${each.channels === 1 ? "" : "s"}`];
    if (each.language) words.push(each.language);
    if (each.title) words.push(`“${each.title}”`);
    return words.join(", ");
  });
  const count = tracks.length === 1 ? "1 audio track" : `${tracks.length} audio tracks`;
  return `there is no audio track ${track} (tracks count from 0): this file has ${count} (${described.join("; ")})`;
}

/**
 * The cover: a frame a tenth into the span (at most a minute in) of the first real video
 * stream, kept within the video's length; else the picture the source carries; else none.
 */
function coverSource(source: SourceInfo, spanStartSec: number, spanSec: number): CoverSource | undefined {
  if (source.video) {
    let atSec = spanStartSec + Math.min(spanSec * COVER_AT_FRACTION, COVER_AT_MOST_SEC);
    const length = source.video.durationSec;
    if (length && atSec > length * 0.9) atSec = length * COVER_AT_FRACTION;
    return { stream: source.video.stream, atSec: Math.max(0, Math.round(atSec * 1000) / 1000) };
  }
  return source.picture ? { stream: source.picture.stream, codec: source.picture.codec } : undefined;
}

/** The source's chapters on the MP3's timeline: moved by the trim's start, cut to the span, empty ones dropped. */
function mp3Chapters(chapters: Chapter[], spanStartSec: number, spanSec: number): Chapter[] {
  return chapters
    .map((chapter) => ({
      startSec: Math.max(0, chapter.startSec - spanStartSec),
      endSec: Math.min(spanSec, chapter.endSec - spanStartSec),
      ...definedTag("title", chapter.title),
    }))
    .filter((chapter) => chapter.endSec > chapter.startSec);
}

/** A source's tag as an ID3 text: one line, at most MAX_TAG_LENGTH characters; blank is none. */
function cleanTag(text: string | undefined): string | undefined {
  const line = text?.replace(/[\p{Cc}\p{Zl}\p{Zp}]+/gu, " ").trim();
  return line ? [...line].slice(0, MAX_TAG_LENGTH).join("") : undefined;
}

/** `{ [name]: text }` cleaned, or nothing when there is no text. */
function definedTag<Name extends string>(name: Name, text: string | undefined): Partial<Record<Name, string>> {
  const clean = cleanTag(text);
  return clean ? ({ [name]: clean } as Record<Name, string>) : {};
}
