// Sending: the upload queue (one file at a time, each with its options) and its progress
// (files from 8 MiB on resumably over tus: resumable.ts; smaller ones whole, as multipart),
// the file picker and dropping files on the page (both add to "Ready to convert", see
// staging.ts), and the link form (sent at once with the shared options).
import { convertLink, uploadVideo } from "./api.ts";
import { describeError } from "./errors.ts";
import { sizeText } from "./format.ts";
import { follow, render } from "./jobs.ts";
import type { Options } from "./options.ts";
import { sharedOptions } from "./options-panel.ts";
import { busy, say, view } from "./page.ts";
import { RESUMABLE_FROM_BYTES, uploadResumable } from "./resumable.ts";
import { current, freshToken, sessionLost } from "./session.ts";
import { refreshUsage } from "./usage.ts";

export interface Outgoing {
  file: File;
  options: Options;
}

export const upload = (() => {
  const waiting: Outgoing[] = [];
  let running: { cancel(): void } | undefined;

  async function next() {
    const outgoing = waiting.shift();
    if (!outgoing || !current) return;
    const { file, options } = outgoing;
    const mine = current;
    const token = await freshToken(); // an upload is not sent twice: its token must not be refused
    if (!token || current !== mine) return;
    const position = waiting.length ? ` (${waiting.length} more waiting)` : "";
    view.upload.hidden = false;
    view.uploadBar.value = 0;
    view.uploadLabel.textContent = `Uploading ${file.name}${position}…`;
    let verb = "Uploading";
    const progress = (sent: number, total: number) => {
      const percent = total ? Math.floor((sent / total) * 100) : 0;
      view.uploadBar.value = percent;
      view.uploadLabel.textContent =
        sent < total ? `${verb} ${file.name}: ${percent}% of ${sizeText(total)}${position}` : `Checking ${file.name}…`;
    };
    // Large files go resumably (tus): a dropped connection or a reload costs little (resumable.ts).
    const sending =
      file.size >= RESUMABLE_FROM_BYTES
        ? uploadResumable(file, options, mine.email, {
            token: freshToken,
            progress,
            resuming: () => {
              verb = "Resuming";
              view.uploadLabel.textContent = `Resuming ${file.name}${position}…`;
            },
          })
        : uploadVideo(token, file, options, progress);
    running = sending;
    try {
      const job = await sending.done;
      if (current !== mine) return;
      render(job, "top");
      follow();
      say({ title: `${file.name} is uploaded.`, detail: "Follow its conversion in your list." });
    } catch (error) {
      if ((error as Error).name === "AbortError") say({ title: `The upload of ${file.name} was cancelled.` });
      else if (!sessionLost(error)) say(describeError(error, "upload", file.name), "error");
    } finally {
      refreshUsage();
      running = undefined;
      if (!waiting.length) view.upload.hidden = true;
    }
    await next();
  }

  return {
    add(items: Iterable<Outgoing>) {
      waiting.push(...items);
      if (!running) void next();
    },
    cancelAll() {
      waiting.length = 0;
      running?.cancel();
    },
  };
})();

/** Where chosen and dropped files go: staging.ts sets it (it sends through `upload`). */
let chosen: (files: FileList) => void = () => {};
export const onFilesChosen = (handler: typeof chosen) => {
  chosen = handler;
};

view.pick.addEventListener("click", () => view.file.click());
view.file.addEventListener("change", () => {
  if (view.file.files?.length) chosen(view.file.files);
  view.file.value = ""; // the same file may be chosen again
});
view.uploadCancel.addEventListener("click", () => upload.cancelAll());

// Dropping anywhere on the page works; outside the page's drop zone the browser would open the file instead.
let dragDepth = 0;
const dragging = (on: boolean) => view.drop.classList.toggle("dragging", on);
window.addEventListener("dragenter", (event) => {
  if (!event.dataTransfer?.types.includes("Files") || view.app.hidden) return;
  dragDepth++;
  dragging(true);
});
window.addEventListener("dragleave", () => {
  dragDepth = Math.max(0, dragDepth - 1);
  if (!dragDepth) dragging(false);
});
window.addEventListener("dragover", (event) => event.preventDefault());
window.addEventListener("drop", (event) => {
  event.preventDefault();
  dragDepth = 0;
  dragging(false);
  if (!view.app.hidden && event.dataTransfer?.files.length) chosen(event.dataTransfer.files);
});

view.linkForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const url = view.link.value.trim();
  const { options, invalid } = sharedOptions();
  if (invalid) {
    view.advanced.open = true;
    invalid.reportValidity();
    return;
  }
  const button = view.linkForm.querySelector("button")!;
  busy(button, "Sending…");
  try {
    const job = await convertLink(current!.token, url, options);
    render(job, "top");
    follow();
    view.link.value = "";
    say({ title: "The link is added.", detail: "Its video will be downloaded and converted to MP3." });
  } catch (error) {
    if (!sessionLost(error)) say(describeError(error, "link", url), "error");
  } finally {
    busy(button, null);
    refreshUsage();
  }
});
