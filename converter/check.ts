// ffmpeg can exit 0 having written a useless file (a damaged source it read only part
// of): the MP3 is kept only if it lasts as long as the source's audio.
import { stat } from "node:fs/promises";
import { BadInput } from "./errors.ts";
import type { SourceInfo } from "./probe.ts";

/**
 * Throws BadInput unless the MP3 at `output` is not empty and its `writtenSeconds` are
 * within 2 % (at least 1 s) of the source's audio. The length is ffmpeg's own count of
 * what it encoded (`transcode`'s answer), not a second ffprobe (~50 ms).
 */
export async function checkOutput(output: string, source: SourceInfo, writtenSeconds: number): Promise<void> {
  const produced = await stat(output);
  const tolerance = Math.max(1, source.audioSeconds * 0.02);
  if (produced.size === 0 || Math.abs(writtenSeconds - source.audioSeconds) > tolerance) {
    throw new BadInput(
      `the video seems damaged: its audio should last ${source.audioSeconds.toFixed(1)} s but only ${writtenSeconds.toFixed(1)} s could be read`,
    );
  }
}
