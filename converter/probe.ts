// What ffprobe says of a spooled video: how long its audio lasts, or why it cannot be
// converted at all (BadInput, with a reason a person understands). ffprobe runs here
// rather than through fluent-ffmpeg, whose ffprobe cannot be stopped: it is killed when
// the message's signal is aborted or after PROBE_TIMEOUT_MS.
import { stat } from "node:fs/promises";
import { BadInput } from "./errors.ts";
import { inputOptions } from "./inputs.ts";
import { checkAudioLength, PROBE_TIMEOUT_MS } from "./limits.ts";

export interface SourceInfo {
  audioSeconds: number;
}

export interface ProbeOptions {
  /** The type the video was sniffed as: it names the one demuxer ffprobe may use (converter/inputs.ts). */
  contentType: string;
  /** A longer audio is refused (MAX_AUDIO_SECONDS). */
  maxAudioSeconds: number;
  /** Aborting it kills ffprobe; `probeSource` then rejects with the signal's reason. */
  signal: AbortSignal;
}

interface Probed {
  streams?: { codec_type?: string; duration?: string }[];
  format?: { duration?: string };
}

const NOT_MEDIA = "the file is not a video we can read (damaged, truncated or not a media file)";

export async function probeSource(path: string, options: ProbeOptions): Promise<SourceInfo> {
  if ((await stat(path)).size === 0) throw new BadInput("the file is empty");
  const data = await ffprobe(path, options);
  const audio = data.streams?.find((stream) => stream.codec_type === "audio");
  if (!audio) throw new BadInput("the video has no audio track");
  const seconds = Number(audio.duration) || Number(data.format?.duration);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new BadInput("the video's audio track is empty");
  checkAudioLength(seconds, options.maxAudioSeconds);
  return { audioSeconds: seconds };
}

async function ffprobe(path: string, { contentType, signal }: ProbeOptions): Promise<Probed> {
  signal.throwIfAborted();
  const timeout = AbortSignal.timeout(PROBE_TIMEOUT_MS);
  const command = [process.env.FFPROBE_PATH || "ffprobe", "-v", "error", "-print_format", "json"];
  command.push("-show_streams", "-show_format", ...inputOptions(contentType), path);
  const child = Bun.spawn(command, { stdout: "pipe", stderr: "ignore", signal: AbortSignal.any([signal, timeout]) });
  const [code, out] = await Promise.all([child.exited, new Response(child.stdout).text()]);
  if (signal.aborted) throw signal.reason;
  if (timeout.aborted) throw new BadInput(`the file could not be read within ${PROBE_TIMEOUT_MS / 1000} s`);
  if (code !== 0) throw new BadInput(NOT_MEDIA);
  try {
    return JSON.parse(out) as Probed;
  } catch {
    throw new BadInput(NOT_MEDIA);
  }
}
