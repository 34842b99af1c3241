// Test media made with the real ffmpeg during the run, so no binary fixtures live
// in the repository: videos in several containers, with or without audio. The tests,
// the benchmarks and scripts/smoke.ts all make theirs here; nothing in this file needs
// a test runner, only ffmpeg and ffprobe on the PATH.
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

type Format = "mp4" | "mov" | "mkv" | "webm" | "avi" | "ts" | "flv";

export interface VideoOptions {
  seconds?: number;
  /** container by file extension: mp4, mov, mkv, webm, avi, ts, flv */
  format?: Format;
  audio?: boolean;
  /** MP4/MOV: index (moov) at the front; the default leaves it at the end, as cameras do */
  faststart?: boolean;
  size?: string;
  /** frames per second */
  rate?: number;
  /** the audio begins this many seconds after the video (and ends with it) */
  audioStartSec?: number;
  /** strength (1-100) of moving noise over the picture, which then barely compresses: a big file in few seconds */
  noise?: number;
  /** the video encoder and its settings, instead of the format's own (H.264 ultrafast; VP8 in WebM) */
  encoder?: string[];
}

/** ffmpeg's muxer for each container (a temporary file's name does not say which). */
const MUXERS: Record<Format, string> = {
  mp4: "mp4",
  mov: "mov",
  mkv: "matroska",
  webm: "webm",
  avi: "avi",
  ts: "mpegts",
  flv: "flv",
};

let workDir: string | undefined;
let counter = 0;

/**
 * Makes a video of the test pattern with a 440 Hz tone; writes it to `path`, by default a
 * new file in a temporary folder of this run.
 */
export async function makeVideo(options: VideoOptions = {}, path?: string): Promise<string> {
  const format = options.format ?? "mp4";
  workDir ??= mkdtempSync(join(tmpdir(), "m3dio-media-"));
  const output = path ?? join(workDir, `video-${++counter}.${format}`);
  await run(["ffmpeg", ...ffmpegArguments(options), "-f", MUXERS[format], output]);
  return output;
}

/**
 * makeVideo, made once and kept in `dir` under `name` and a hash of the options, so later
 * runs skip the encoding. Written under a temporary name and renamed, so an interrupted
 * run, or two at once, never leave a half-written file to reuse. `onMade` hears of a new one.
 */
export async function keptVideo(
  dir: string,
  name: string,
  options: VideoOptions,
  onMade?: (path: string, ms: number) => void,
): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const key = Bun.hash(JSON.stringify(options)).toString(36);
  const path = join(dir, `${name}-${key}.${options.format ?? "mp4"}`);
  if (existsSync(path)) return path;
  const temporary = `${path}.partial-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const started = performance.now();
  try {
    await makeVideo(options, temporary);
    renameSync(temporary, path);
  } finally {
    rmSync(temporary, { force: true });
  }
  onMade?.(path, performance.now() - started);
  return path;
}

function ffmpegArguments({
  seconds = 2,
  format = "mp4",
  audio = true,
  faststart = false,
  size = "160x90",
  rate = 15,
  audioStartSec = 0,
  noise,
  encoder,
}: VideoOptions): string[] {
  const args = ["-hide_banner", "-loglevel", "error", "-y"];
  args.push("-f", "lavfi", "-i", `testsrc=duration=${seconds}:size=${size}:rate=${rate}`);
  if (audio) {
    if (audioStartSec) args.push("-itsoffset", String(audioStartSec));
    args.push("-f", "lavfi", "-i", `sine=frequency=440:duration=${seconds - audioStartSec}`);
  }
  if (noise) args.push("-vf", `noise=alls=${noise}:allf=t`);
  const h264 = format === "mp4" || format === "mov" || format === "mkv";
  if (encoder) args.push("-c:v", ...encoder);
  else if (format === "webm") args.push("-c:v", "libvpx", "-b:v", "200k");
  else if (h264) args.push("-c:v", "libx264", "-preset", "ultrafast");
  if (audio && format === "webm") args.push("-c:a", "libopus");
  else if (audio && h264) args.push("-c:a", "aac");
  if (faststart) args.push("-movflags", "+faststart");
  args.push("-shortest");
  return args;
}

/** Duration in seconds and the codec of each stream, from ffprobe. */
export async function probe(path: string): Promise<{ durationSec: number; streams: string[]; format: string }> {
  const entries = "format=duration,format_name:stream=codec_type,codec_name";
  const out = await run(["ffprobe", "-v", "error", "-show_entries", entries, "-of", "json", path]);
  const info = JSON.parse(out) as {
    format: { duration: string; format_name: string };
    streams: { codec_type: string; codec_name: string }[];
  };
  return {
    durationSec: Number(info.format.duration),
    format: info.format.format_name,
    streams: info.streams.map((stream) => `${stream.codec_type}:${stream.codec_name}`),
  };
}

/** Runs a command to its end; answers its stdout, or throws with its stderr. */
export async function run(command: string[]): Promise<string> {
  const child = Bun.spawn(command, { stdout: "pipe", stderr: "pipe" });
  const [code, out, err] = await Promise.all([
    child.exited,
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  if (code !== 0) throw new Error(`${command[0]} failed (${code}): ${err}`);
  return out;
}

/** Audio-only containers the gateway accepts beside videos (lib/upload.ts AUDIO_TYPES). */
export type AudioFormat = "m4a" | "mp3" | "wav" | "flac" | "ogg" | "opus";

/** ffmpeg's muxer and encoder for each audio format. */
const AUDIO_ENCODINGS: Record<AudioFormat, { muxer: string; encoder: string }> = {
  m4a: { muxer: "ipod", encoder: "aac" },
  mp3: { muxer: "mp3", encoder: "libmp3lame" },
  wav: { muxer: "wav", encoder: "pcm_s16le" },
  flac: { muxer: "flac", encoder: "flac" },
  ogg: { muxer: "ogg", encoder: "libvorbis" },
  opus: { muxer: "ogg", encoder: "libopus" },
};

/** Makes an audio-only file (a 440 Hz tone, no video stream) in `format`; written to `path`, by default a new temporary file. */
export async function makeAudio(
  { format = "mp3", seconds = 2 }: { format?: AudioFormat; seconds?: number } = {},
  path?: string,
): Promise<string> {
  workDir ??= mkdtempSync(join(tmpdir(), "m3dio-media-"));
  const output = path ?? join(workDir, `audio-${++counter}.${format}`);
  const { muxer, encoder } = AUDIO_ENCODINGS[format];
  const tone = `sine=frequency=440:duration=${seconds}`;
  await run([
    "ffmpeg",
    "-hide_banner",
    "-loglevel",
    "error",
    "-y",
    "-f",
    "lavfi",
    "-i",
    tone,
    "-c:a",
    encoder,
    "-f",
    muxer,
    output,
  ]);
  return output;
}
