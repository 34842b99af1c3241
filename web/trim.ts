// A chosen file's trim: the Start and End fields of its options form, each with a slider
// once the file's length is known. The length is read in this browser from the File
// itself (a media element on an object URL, metadata only), before anything is sent.

import { h } from "./dom.ts";
import { parseTime, timeText } from "./format.ts";

/** The file's length in seconds, or undefined when this browser cannot read it (AVI, FLV, …). */
export function readLength(file: File, timeoutMs = 15_000): Promise<number | undefined> {
  return new Promise((resolve) => {
    const media = document.createElement(file.type.startsWith("audio/") ? "audio" : "video");
    const url = URL.createObjectURL(file);
    const done = (seconds?: number) => {
      clearTimeout(timer);
      media.removeAttribute("src");
      media.load(); // lets go of the file
      URL.revokeObjectURL(url);
      resolve(seconds !== undefined && Number.isFinite(seconds) && seconds > 0 ? seconds : undefined);
    };
    const timer = setTimeout(() => done(), timeoutMs);
    media.preload = "metadata";
    media.muted = true;
    media.addEventListener("loadedmetadata", () => done(media.duration), { once: true });
    media.addEventListener("error", () => done(), { once: true });
    media.src = url;
  });
}

export interface TrimControl {
  /** what the trim makes of the file, in words: its length and the part kept */
  status: HTMLElement;
  setLength(seconds: number | undefined): void;
  /** Moves the sliders to what the fields say (after the fields were written). */
  sync(): void;
}

/** Adds sliders beside the `start` and `end` fields and a line saying the length and the part kept. */
export function trimControl(start: HTMLInputElement, end: HTMLInputElement): TrimControl {
  let length: number | undefined;
  let read = false;
  const status = h("p", { class: "hint trim-status" }, "Reading its length…");
  status.setAttribute("aria-live", "polite");
  const slider = (field: HTMLInputElement, name: string) => {
    const range = h("input", { type: "range", min: "0", step: "0.1", hidden: true, className: "timeline" });
    range.setAttribute("aria-label", `${name} on the timeline`);
    const row = h("div", { class: "time-row" });
    field.replaceWith(row);
    row.append(field, range);
    range.addEventListener("input", () => {
      field.value = timeText(Number(range.value));
      range.setAttribute("aria-valuetext", field.value);
      field.dispatchEvent(new Event("input", { bubbles: true })); // the form hears it as typed
    });
    field.addEventListener("input", () => sync());
    return range;
  };
  const ranges = { start: slider(start, "Start"), end: slider(end, "End") };

  function sync() {
    const from = parseTime(start.value);
    const to = parseTime(end.value);
    if (length !== undefined) {
      ranges.start.value = String(Number.isFinite(from) ? from : 0);
      ranges.end.value = String(Number.isFinite(to) ? to : length);
      for (const range of Object.values(ranges)) range.setAttribute("aria-valuetext", timeText(Number(range.value)));
    }
    status.textContent = read ? describe(length, from, to) : "Reading its length…";
  }

  return {
    status,
    sync,
    setLength(seconds) {
      length = seconds;
      read = true;
      for (const range of Object.values(ranges)) {
        range.hidden = seconds === undefined;
        if (seconds !== undefined) range.max = String(Math.round(seconds * 10) / 10);
      }
      if (seconds !== undefined) end.placeholder = timeText(seconds);
      sync();
    },
  };
}

/** "Length 3:05 · the MP3: 0:10 to 1:00 (0:50)" */
function describe(length: number | undefined, from = 0, to?: number): string {
  const whole =
    length === undefined ? "Length: known once converted" : `Length ${timeText(Math.round(length * 10) / 10)}`;
  if (!Number.isFinite(from) || (to !== undefined && !Number.isFinite(to))) return whole;
  const last = to ?? length;
  if (!from && to === undefined) return `${whole} · the whole of it`;
  if (last === undefined) return `${whole} · the MP3 from ${timeText(from)}`;
  const kept = last - from;
  return `${whole} · the MP3: ${timeText(from)} to ${timeText(last)}${kept > 0 ? ` (${timeText(kept)})` : ""}`;
}
