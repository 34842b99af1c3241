// Progress bars on stderr (cli-progress), for a person watching: none when stderr is not a
// terminal (a script, a log file, a pipe) or with --quiet, so output meant for programs
// stays clean. Data never goes through here: it goes to stdout or a file.
import { SingleBar } from "cli-progress";
import { formatBytes } from "../lib/upload.ts";
import { onInterrupt } from "./interrupt.ts";

export interface Progress {
  /** Where it has got to, out of the total given to `bar` (or a new total). */
  update(value: number, total?: number, label?: string): void;
  /** Done with it: the bar's last state stays on the screen. */
  stop(): void;
}

const silent: Progress = { update() {}, stop() {} };

/** Whether bars are drawn at all. */
export const drawsBars = (quiet: boolean | undefined) => !quiet && process.stderr.isTTY === true;

/** A bar of bytes (an upload or a download) or of percent (a conversion). */
export function progressBar(
  quiet: boolean | undefined,
  label: string,
  total: number,
  unit: "bytes" | "percent",
): Progress {
  if (!drawsBars(quiet)) return silent;
  // Bytes flow steadily, so their rate tells the time left; a conversion's percent does not: its time so far.
  const amount = unit === "bytes" ? "{value} of {total} | {eta_formatted} left" : "{value}% | {duration_formatted}";
  const bar = new SingleBar({
    stream: process.stderr,
    format: `{label} [{bar}] ${amount}`,
    barsize: 30,
    hideCursor: true,
    etaBuffer: 20,
    formatValue: (value, _options, type) =>
      unit === "bytes" && (type === "value" || type === "total") ? formatBytes(value) : String(value),
  });
  bar.start(Math.max(total, 1), 0, { label: label.padEnd(10) });
  const forget = onInterrupt(() => {
    bar.stop(); // shows the cursor again
    process.stderr.write("\n");
  });
  return {
    update(value, newTotal, newLabel) {
      if (newTotal !== undefined) bar.setTotal(Math.max(newTotal, 1));
      bar.update(value, newLabel === undefined ? {} : { label: newLabel.padEnd(10) });
    },
    stop() {
      forget();
      bar.stop();
    },
  };
}

/** A note for the person on stderr (never for a script: suppressed by --quiet). */
export function say(quiet: boolean | undefined, text: string): void {
  if (!quiet) process.stderr.write(`${text}\n`);
}
