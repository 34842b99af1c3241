// The MP3's front cover as a JPEG: a frame of the video (the keyframe at or before the
// plan's time, at most COVER_WIDTH wide), or the picture an audio source carries (kept as it is
// when it is a JPEG). A second ffmpeg, run beside the audio's once the probe has answered;
// it decodes one picture, so it costs a process start and little else. A source whose
// picture cannot be had gets no cover rather than a failed job: the audio is what was asked.
import { stat } from "node:fs/promises";
import type { Readable } from "node:stream";
import { BadInput } from "./errors.ts";
import type { CoverSource } from "./plan.ts";
import { feed } from "./source.ts";

/** A frame cover is at most this wide (height in proportion). */
export const COVER_WIDTH = 600;
/** A bigger picture (an audio file's own, kept as it is) is left out. */
export const MAX_COVER_BYTES = 8 * 1024 * 1024;
/** The picture must be out by then; it is one frame. */
const COVER_TIMEOUT_MS = 30_000;

/**
 * Writes the cover for `source` of `input` to `output` as a JPEG; answers whether there is
 * one. Rejects with the signal's reason when it is aborted, and with BadInput (a reason for
 * the log, not the user) when ffmpeg could not make it.
 */
export async function extractCover(
  input: string | Readable,
  source: CoverSource,
  { inputOptions, output, signal }: { inputOptions: string[]; output: string; signal: AbortSignal },
): Promise<boolean> {
  signal.throwIfAborted();
  const timeout = AbortSignal.timeout(COVER_TIMEOUT_MS);
  const command = [process.env.FFMPEG_PATH || "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y"];
  command.push(...inputOptions);
  // The keyframe at or before the time is the cover: the seek lands on it and only keyframes
  // are decoded. Its timestamp is before the seek's, so it is passed through as it is
  // rather than dropped as early (which would leave no frame when no keyframe follows).
  // A pipe cannot seek: only keyframes are decoded, up to the time, each written over the
  // last (`-update 1`), so the cover is the same keyframe at or before it as from a file.
  const piped = typeof input !== "string";
  const frame = "atSec" in source;
  if (frame && !piped) command.push("-noaccurate_seek", "-skip_frame", "nokey", "-ss", String(source.atSec));
  if (frame && piped) command.push("-skip_frame", "nokey", "-t", String(source.atSec + 0.001));
  command.push("-i", piped ? "pipe:0" : input, "-map", `0:${source.stream}`, "-fps_mode", "passthrough");
  if (!(frame && piped)) command.push("-frames:v", "1");
  if ("codec" in source && source.codec === "mjpeg") command.push("-c:v", "copy");
  else command.push("-vf", `scale=w='min(${COVER_WIDTH},iw)':h=-2`, "-q:v", "3");
  command.push(...(frame && piped ? ["-update", "1", "-f", "image2"] : ["-f", "mjpeg"]), output);
  const stdin = piped ? "pipe" : "ignore";
  const child = Bun.spawn(command, {
    stdin,
    stdout: "ignore",
    stderr: "pipe",
    signal: AbortSignal.any([signal, timeout]),
  });
  const feeding = piped ? feed(input, child.stdin as Bun.FileSink, child.exited) : null;
  const [code, errors, fed] = await Promise.all([child.exited, new Response(child.stderr).text(), feeding]);
  if (signal.aborted) throw signal.reason;
  if (fed) throw fed; // the store, not the picture
  if (timeout.aborted) throw new BadInput(`no picture within ${COVER_TIMEOUT_MS / 1000} s`);
  if (code !== 0) throw new BadInput(`ffmpeg could not take the picture: ${errors.trim().split("\n").pop()}`);
  const size = (await stat(output).catch(() => undefined))?.size ?? 0;
  if (size > MAX_COVER_BYTES) throw new BadInput(`the picture has ${size} bytes, more than ${MAX_COVER_BYTES}`);
  return size > 0; // a video stream without a decodable keyframe gives no frame, and ffmpeg exits 0
}
