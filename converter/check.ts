// ffmpeg can exit 0 having written a useless file (a damaged source it read only part
// of): the MP3 is kept only if it lasts as long as the audio it was to hold.
import { stat } from "node:fs/promises";
import { BadInput } from "./errors.ts";

/**
 * Throws BadInput unless the MP3 at `output` is not empty and its `writtenSeconds` are
 * within 2 % (at least 1 s) of `expectedSeconds`: the source's audio, or the trimmed span
 * of it. The length is ffmpeg's own count of what it encoded (`transcode`'s answer), not
 * a second ffprobe (~50 ms).
 */
export async function checkOutput(output: string, expectedSeconds: number, writtenSeconds: number): Promise<void> {
  const produced = await stat(output);
  const tolerance = Math.max(1, expectedSeconds * 0.02);
  if (produced.size === 0 || Math.abs(writtenSeconds - expectedSeconds) > tolerance) {
    throw new BadInput(
      `the video seems damaged: its audio should last ${expectedSeconds.toFixed(1)} s but only ${writtenSeconds.toFixed(1)} s could be read`,
    );
  }
}
