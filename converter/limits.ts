// Bounds on the work one job may cause. A few megabytes can hold hours of audio (10 h of
// FLAC silence in MKV is 250 KB), and a container can claim one length and hold another,
// so two bounds: the probed length against MAX_AUDIO_SECONDS before any real work, and a
// wall-clock budget for ffmpeg proportional to that length, which also stops a file whose
// header understates what it holds.
import { BadInput } from "./errors.ts";

/** ffmpeg gets this long to start, whatever the length... */
export const BUDGET_BASE_MS = 10_000;
/** ...and must convert at least this many seconds of audio per second after that. */
export const MIN_SPEED = 2;
/** ffprobe reads headers and a few seconds of packets; longer than this, the file is built to be slow. */
export const PROBE_TIMEOUT_MS = 30_000;

/** How long ffmpeg may run for `audioSeconds` of audio. */
export const timeBudgetMs = (audioSeconds: number): number => BUDGET_BASE_MS + (audioSeconds * 1000) / MIN_SPEED;

/** Throws BadInput naming the limit when the audio is longer than `maxSeconds`. */
export function checkAudioLength(audioSeconds: number, maxSeconds: number): void {
  if (audioSeconds > maxSeconds)
    throw new BadInput(
      `the audio lasts ${clock(audioSeconds)}, longer than the ${clock(maxSeconds)} (${maxSeconds} s) this service converts`,
      "too_long",
    );
}

/** The failure when ffmpeg outlasts its budget. */
export const overBudget = (audioSeconds: number) =>
  new BadInput(
    `converting took longer than the ${clock(timeBudgetMs(audioSeconds) / 1000)} allowed for ${clock(audioSeconds)} of audio: the file may be damaged or claim a shorter length than it holds`,
  );

/** Seconds as h:mm:ss (m:ss under an hour). */
export function clock(seconds: number): string {
  const whole = Math.round(seconds);
  const [hours, minutes, secs] = [Math.floor(whole / 3600), Math.floor((whole % 3600) / 60), whole % 60];
  const pad = (value: number) => String(value).padStart(2, "0");
  return hours ? `${hours}:${pad(minutes)}:${pad(secs)}` : `${minutes}:${pad(secs)}`;
}
