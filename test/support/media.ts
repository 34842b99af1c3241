// Test media made with the real ffmpeg during the run, so no binary fixtures live
// in the repository: videos in several containers, with or without audio.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface VideoOptions {
  seconds?: number;
  /** container by file extension: mp4, mov, mkv, webm, avi, ts, flv */
  format?: "mp4" | "mov" | "mkv" | "webm" | "avi" | "ts" | "flv";
  audio?: boolean;
  /** MP4/MOV: index (moov) at the front; the default leaves it at the end, as cameras do */
  faststart?: boolean;
  size?: string;
  /** the audio begins this many seconds after the video (and ends with it) */
  audioStartSec?: number;
}

const workDir = mkdtempSync(join(tmpdir(), "m3dio-media-"));
let counter = 0;

export async function makeVideo({
  seconds = 2,
  format = "mp4",
  audio = true,
  faststart = false,
  size = "160x90",
  audioStartSec = 0,
}: VideoOptions = {}) {
  const path = join(workDir, `video-${++counter}.${format}`);
  const args = [
    "-hide_banner",
    "-loglevel",
    "error",
    "-y",
    "-f",
    "lavfi",
    "-i",
    `testsrc=duration=${seconds}:size=${size}:rate=15`,
  ];
  if (audio)
    args.push(
      ...(audioStartSec ? ["-itsoffset", String(audioStartSec)] : []),
      "-f",
      "lavfi",
      "-i",
      `sine=frequency=440:duration=${seconds - audioStartSec}`,
    );
  if (format === "webm") args.push("-c:v", "libvpx", "-b:v", "200k", ...(audio ? ["-c:a", "libopus"] : []));
  else if (format === "mp4" || format === "mov" || format === "mkv")
    args.push("-c:v", "libx264", "-preset", "ultrafast", ...(audio ? ["-c:a", "aac"] : []));
  if (faststart) args.push("-movflags", "+faststart");
  args.push("-shortest", path);
  await run(["ffmpeg", ...args]);
  return path;
}

/** Duration in seconds and the codec of each stream, from ffprobe. */
export async function probe(path: string): Promise<{ durationSec: number; streams: string[]; format: string }> {
  const out = await run([
    "ffprobe",
    "-v",
    "error",
    "-show_entries",
    "format=duration,format_name:stream=codec_type,codec_name",
    "-of",
    "json",
    path,
  ]);
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

async function run(command: string[]): Promise<string> {
  const child = Bun.spawn(command, { stdout: "pipe", stderr: "pipe" });
  const [code, out, err] = await Promise.all([
    child.exited,
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  if (code !== 0) throw new Error(`${command[0]} failed (${code}): ${err}`);
  return out;
}
