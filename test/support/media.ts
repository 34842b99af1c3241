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
  /**
   * MP4/MOV: the sound in ~1 s runs of its own: in fragments (`-movflags +frag_keyframe`), or
   * in chunks of the one index, as phones write them (`-chunk_duration`)
   */
  runs?: "fragments" | "chunks";
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
  runs,
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
  if (runs === "fragments") args.push("-movflags", "+frag_keyframe", "-frag_duration", "1000000");
  if (runs === "chunks")
    args.push("-max_interleave_delta", "0", "-chunk_duration", "1000000", "-chunk_size", "100000000");
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

/**
 * Makes an audio-only file (a 440 Hz tone, no video stream) in `format`; written to `path`,
 * by default a new temporary file. `cover` adds a 64×64 red picture as its own cover
 * (mp3, m4a, flac); `tags` become the file's own tags.
 */
export async function makeAudio(
  {
    format = "mp3",
    seconds = 2,
    cover = false,
    tags = {},
  }: { format?: AudioFormat; seconds?: number; cover?: boolean; tags?: Record<string, string> } = {},
  path?: string,
): Promise<string> {
  workDir ??= mkdtempSync(join(tmpdir(), "m3dio-media-"));
  const output = path ?? join(workDir, `audio-${++counter}.${format}`);
  const { muxer, encoder } = AUDIO_ENCODINGS[format];
  const args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"];
  args.push("-f", "lavfi", "-i", `sine=frequency=440:duration=${seconds}`);
  if (cover) args.push("-f", "lavfi", "-i", "color=c=red:s=64x64:d=1", "-map", "0:a", "-map", "1:v");
  args.push("-c:a", encoder);
  if (cover) args.push("-c:v", "mjpeg", "-frames:v", "1", "-disposition:v", "attached_pic");
  for (const [key, value] of Object.entries(tags)) args.push("-metadata", `${key}=${value}`);
  await run([...args, "-f", muxer, output]);
  return output;
}

/**
 * An MKV video whose two audio tracks tell apart: track 0 a 440 Hz stereo tone in English,
 * track 1 an 880 Hz mono tone titled "Commentary". `defaultTrack` is the one marked default
 * (the other is not).
 */
export async function makeTwoTrackVideo({ seconds = 3, defaultTrack = 0 } = {}): Promise<string> {
  workDir ??= mkdtempSync(join(tmpdir(), "m3dio-media-"));
  const output = join(workDir, `two-tracks-${++counter}.mkv`);
  const args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"];
  args.push("-f", "lavfi", "-i", `testsrc=duration=${seconds}:size=160x90:rate=15`);
  args.push("-f", "lavfi", "-i", `sine=frequency=440:duration=${seconds}`);
  args.push("-f", "lavfi", "-i", `sine=frequency=880:duration=${seconds}`);
  args.push("-map", "0:v", "-map", "1:a", "-map", "2:a", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac");
  args.push("-ac:a:0", "2", "-ac:a:1", "1", "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "title=Commentary");
  args.push(`-disposition:a:${defaultTrack}`, "default", `-disposition:a:${1 - defaultTrack}`, "0");
  await run([...args, "-f", "matroska", output]);
  return output;
}

export interface Chapter {
  startSec: number;
  endSec: number;
  title: string;
}

/**
 * An MP4 video (a 440 Hz tone) with `chapters` and the container tags `tags` (MP4 adds
 * its own: major_brand, minor_version, compatible_brands, encoder).
 */
export async function makeChapteredVideo({
  seconds = 6,
  chapters = [] as Chapter[],
  tags = {} as Record<string, string>,
}): Promise<string> {
  workDir ??= mkdtempSync(join(tmpdir(), "m3dio-media-"));
  const output = join(workDir, `chaptered-${++counter}.mp4`);
  // ffmetadata: `=`, `;`, `#`, `\` and line breaks are escaped with a backslash.
  const escaped = (text: string) => text.replace(/[=;#\\\n]/g, (char) => `\\${char}`);
  const lines = [";FFMETADATA1", ...Object.entries(tags).map(([key, value]) => `${key}=${escaped(value)}`)];
  for (const { startSec, endSec, title } of chapters)
    lines.push(
      "[CHAPTER]",
      "TIMEBASE=1/1000",
      `START=${startSec * 1000}`,
      `END=${endSec * 1000}`,
      `title=${escaped(title)}`,
    );
  const metadata = join(workDir, `chapters-${counter}.txt`);
  await Bun.write(metadata, `${lines.join("\n")}\n`);
  const args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"];
  args.push("-f", "lavfi", "-i", `testsrc=duration=${seconds}:size=160x90:rate=15`);
  args.push("-f", "lavfi", "-i", `sine=frequency=440:duration=${seconds}`, "-f", "ffmetadata", "-i", metadata);
  args.push("-map", "0:v", "-map", "1:a", "-map_metadata", "2", "-map_chapters", "2");
  args.push("-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest");
  await run([...args, "-f", "mp4", output]);
  return output;
}

/**
 * A short stereo signal whose loudness moves like speech (brown noise, loud and quiet by
 * turns), far from -16 LUFS: `gainDb` sets how far. As WAV in an MKV with a video, so it
 * converts like any video.
 */
export async function makeSpeechLikeVideo({ seconds = 6, gainDb = -12 } = {}): Promise<string> {
  workDir ??= mkdtempSync(join(tmpdir(), "m3dio-media-"));
  const output = join(workDir, `speech-like-${++counter}.mkv`);
  const voice = `anoisesrc=color=brown:duration=${seconds}:amplitude=0.3:seed=7,volume='0.2+0.8*gt(sin(2*PI*1.3*t),0.3)':eval=frame,volume=${gainDb}dB,aformat=channel_layouts=stereo`;
  const args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"];
  args.push("-f", "lavfi", "-i", `testsrc=duration=${seconds}:size=160x90:rate=15`, "-f", "lavfi", "-i", voice);
  args.push("-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "pcm_s16le", "-shortest");
  await run([...args, "-f", "matroska", output]);
  return output;
}

/** Integrated loudness (LUFS) and true peak (dBTP) of a file's audio, as ffmpeg's `ebur128` measures them. */
export async function loudness(path: string): Promise<{ integratedLufs: number; truePeakDb: number }> {
  const child = Bun.spawn(
    ["ffmpeg", "-hide_banner", "-nostats", "-i", path, "-map", "0:a:0", "-af", "ebur128=peak=true", "-f", "null", "-"],
    { stdout: "ignore", stderr: "pipe" },
  );
  const [code, err] = await Promise.all([child.exited, new Response(child.stderr).text()]);
  if (code !== 0) throw new Error(`ffmpeg ebur128 failed (${code}): ${err}`);
  const summary = err.slice(err.lastIndexOf("Summary:"));
  const integrated = /I:\s+(-?[\d.]+) LUFS/.exec(summary)?.[1];
  const peak = /Peak:\s+(-?[\d.]+|-inf) dBFS/.exec(summary)?.[1];
  if (integrated === undefined || peak === undefined) throw new Error(`no ebur128 summary in: ${summary}`);
  return { integratedLufs: Number(integrated), truePeakDb: peak === "-inf" ? -Infinity : Number(peak) };
}

/**
 * The frequency of a file's tone (its first audio track, first channel), from how often
 * the decoded wave crosses zero: enough to tell a 440 Hz tone from an 880 Hz one.
 */
export async function toneFrequency(path: string): Promise<number> {
  const rate = 16_000;
  const child = Bun.spawn(
    ["ffmpeg", "-v", "error", "-i", path, "-map", "0:a:0", "-af", "pan=mono|c0=c0", "-ar", String(rate)].concat([
      "-f",
      "s16le",
      "-",
    ]),
    { stdout: "pipe", stderr: "ignore" },
  );
  const pcm = Buffer.from(await new Response(child.stdout).arrayBuffer());
  await child.exited;
  const samples = new Int16Array(pcm.buffer, pcm.byteOffset, Math.floor(pcm.length / 2));
  let crossings = 0;
  for (let i = 1; i < samples.length; i++) if (samples[i - 1]! < 0 !== samples[i]! < 0) crossings++;
  return crossings / 2 / (samples.length / rate);
}
