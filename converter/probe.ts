// What ffprobe says of a spooled video: how long its audio lasts, or why it cannot be
// converted at all (BadInput, with a reason a person understands).
import { stat } from "node:fs/promises";
import ffmpeg from "fluent-ffmpeg";
import { BadInput } from "./errors.ts";

export interface SourceInfo {
  audioSeconds: number;
}

export async function probeSource(path: string): Promise<SourceInfo> {
  if ((await stat(path)).size === 0) throw new BadInput("the file is empty");
  let data: ffmpeg.FfprobeData;
  try {
    data = await new Promise((resolve, reject) =>
      ffmpeg.ffprobe(path, (error, result) => (error ? reject(error) : resolve(result))),
    );
  } catch {
    throw new BadInput("the file is not a video we can read (damaged, truncated or not a media file)");
  }
  const audio = data.streams.find((stream) => stream.codec_type === "audio");
  if (!audio) throw new BadInput("the video has no audio track");
  const seconds = Number(audio.duration) || Number(data.format.duration);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new BadInput("the video's audio track is empty");
  return { audioSeconds: seconds };
}
