// ffmpeg turns one audio track of a spooled source into a bare MP3 (LAME, VBR unless a
// constant bitrate is set): trimmed, mixed to the channels asked for, loudness-normalised
// if asked. No tags: the ID3 tag (title, cover, chapters) is put in front of it afterwards
// (converter/id3.ts), since it needs what the probe finds and ffmpeg starts before that.
// It stops on an AbortSignal: the worker's shutdown, the job's deletion, its time budget,
// or a probe that found the input bad (or the guessed track wrong) while ffmpeg ran.
import type { Readable } from "node:stream";
import ffmpeg from "fluent-ffmpeg";
import { BadInput } from "./errors.ts";

/** What ffmpeg is told to make; two runs with equal settings make the same MP3. */
export interface AudioSettings {
  /** LAME VBR quality, 0 (best) to 9; used unless `bitrateKbps` is set. */
  quality: number;
  /** A constant bitrate instead of VBR. */
  bitrateKbps?: number;
  /** Which audio track, 0-based among the audio tracks (`-map 0:a:N`); the first by default. */
  track?: number;
  /** Where to start reading, in seconds after the container's start (`-ss` before `-i`: a seek, then exact). */
  seekSec?: number;
  /** How many seconds to write at most (`-t`); past the audio's end ffmpeg just stops. */
  durationSec?: number;
  /** Mix to mono or stereo; by default as the source, at most stereo (LAME's limit). */
  channels?: 1 | 2;
  /** EBU R128: LOUDNESS_FILTER (one pass). */
  normalize?: boolean;
}

/**
 * EBU R128 loudness normalisation, one pass (dynamic mode): -16 LUFS integrated, loudness
 * range 11 LU, true peak -2 dBTP so that the MP3, whose encoding adds a few tenths of a dB
 * of peak, stays at or below -1.5 dBTP. BENCHMARKS.md says why one pass rather than two.
 */
export const LOUDNESS_FILTER = "loudnorm=I=-16:TP=-2:LRA=11";

export interface TranscodeOptions extends AudioSettings {
  /** Options before `-i`: the forced demuxer and the allow-lists (converter/inputs.ts). */
  inputOptions: string[];
  /** Aborting it kills ffmpeg; `transcode` then rejects with the signal's reason. */
  signal: AbortSignal;
  /** ffmpeg's report of the seconds of audio written so far (several times a second). */
  onProgress?: (writtenSeconds: number) => void;
}

/**
 * Runs ffmpeg on a file, or on a stream piped into its stdin (converter/source.ts); resolves
 * with the seconds of audio it wrote (its last `time=` report). A stream that fails (the
 * store away, the file gone) rejects with its own error: the input is not to blame.
 */
export function transcode(input: string | Readable, output: string, options: TranscodeOptions): Promise<number> {
  const { signal, onProgress } = options;
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    let writtenSeconds = 0;
    let streamError: Error | undefined;
    if (typeof input !== "string") input.on("error", (error) => (streamError ??= error));
    const command = ffmpegCommand(input, options);
    const kill = () => command.kill("SIGKILL");
    const finish = () => {
      signal.removeEventListener("abort", kill);
      if (typeof input !== "string") input.destroy(); // ffmpeg may stop before the end (a trim)
    };
    command
      .format("mp3")
      // Not fluent-ffmpeg's "progress" event: listening to it makes it run ffprobe once more.
      .on("stderr", (line: string) => {
        const time = /time=\s*(\d+:\d+:\d+(?:\.\d+)?)/.exec(line)?.[1];
        if (!time) return;
        writtenSeconds = timemarkSeconds(time);
        onProgress?.(writtenSeconds);
      })
      .on("error", (error: Error) => {
        finish();
        if (signal.aborted) return reject(signal.reason);
        if (streamError) return reject(streamError);
        if (/signal/i.test(error.message)) return reject(error); // killed from outside: transient
        reject(new BadInput("the video could not be converted: its audio is damaged or in a format we cannot read"));
      })
      .on("end", () => {
        finish();
        resolve(writtenSeconds);
      })
      // fluent-ffmpeg spawns ffmpeg only after checking its capabilities; an abort before
      // that finds no process to kill, so the start checks the signal too.
      .on("start", () => signal.aborted && kill())
      .save(output);
    signal.addEventListener("abort", kill, { once: true });
  });
}

/** The ffmpeg command for `settings`, up to its output. */
function ffmpegCommand(input: string | Readable, settings: TranscodeOptions) {
  const { quality, bitrateKbps, track = 0, seekSec, durationSec, channels, normalize } = settings;
  const command = ffmpeg(input).inputOptions(settings.inputOptions);
  if (seekSec) command.seekInput(seekSec);
  // The MP3 starts at 0 even when the audio starts later than the video, so ffmpeg's time=
  // counts the audio's length, not its offset plus its length. Channels are mixed before
  // the loudness is measured: a 5.1 downmix changes it.
  const filters = ["asetpts=PTS-STARTPTS"];
  if (channels || normalize) filters.push(`aformat=channel_layouts=${CHANNEL_LAYOUTS[channels ?? 0]}`);
  if (normalize) filters.push(LOUDNESS_FILTER);
  command
    .outputOptions(["-map", `0:a:${track}`, "-map_metadata", "-1", "-map_chapters", "-1", "-id3v2_version", "0"])
    .audioFilters(filters)
    .audioCodec("libmp3lame");
  if (durationSec !== undefined) command.duration(durationSec);
  if (bitrateKbps) command.audioBitrate(bitrateKbps);
  else command.addOutputOption("-q:a", String(quality));
  return command;
}

/** `aformat`'s layouts for a channel count; 0 is "as the source, at most stereo". */
const CHANNEL_LAYOUTS = ["mono|stereo", "mono", "stereo"];

function timemarkSeconds(timemark: string): number {
  const [hours = 0, minutes = 0, secs = 0] = timemark.split(":").map(Number);
  return hours * 3600 + minutes * 60 + secs;
}
