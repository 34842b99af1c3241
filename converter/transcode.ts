// ffmpeg turns a spooled video's audio into an MP3 (LAME, VBR unless a constant bitrate
// is set). It stops on an AbortSignal: the worker's shutdown, the job's deletion, its
// time budget, or a probe that found the input bad while ffmpeg was already running.
import ffmpeg from "fluent-ffmpeg";
import { BadInput } from "./errors.ts";

export interface TranscodeOptions {
  /** Options before `-i`: the forced demuxer and the allow-lists (converter/inputs.ts). */
  inputOptions: string[];
  /** LAME VBR quality, 0 (best) to 9; used unless `bitrateKbps` is set. */
  quality: number;
  /** A constant bitrate instead of VBR. */
  bitrateKbps?: number;
  /** Aborting it kills ffmpeg; `transcode` then rejects with the signal's reason. */
  signal: AbortSignal;
  /** ffmpeg's report of the seconds of audio written so far (several times a second). */
  onProgress?: (writtenSeconds: number) => void;
}

/** Runs ffmpeg; resolves with the seconds of audio it wrote (its last `time=` report). */
export function transcode(input: string, output: string, options: TranscodeOptions): Promise<number> {
  const { quality, bitrateKbps, signal, onProgress } = options;
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    let writtenSeconds = 0;
    // The MP3 starts at 0 even when the audio starts later than the video, so ffmpeg's
    // time= counts the audio's length, not its offset plus its length.
    const command = ffmpeg(input)
      .inputOptions(options.inputOptions)
      .noVideo()
      .audioFilters("asetpts=PTS-STARTPTS")
      .audioCodec("libmp3lame");
    if (bitrateKbps) command.audioBitrate(bitrateKbps);
    else command.addOutputOption("-q:a", String(quality));
    const kill = () => command.kill("SIGKILL");
    const finish = () => signal.removeEventListener("abort", kill);
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

function timemarkSeconds(timemark: string): number {
  const [hours = 0, minutes = 0, secs = 0] = timemark.split(":").map(Number);
  return hours * 3600 + minutes * 60 + secs;
}
