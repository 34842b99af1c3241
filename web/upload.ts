// Sending videos: the upload queue and its progress, the file picker, dropping files on the page, and the link form.
import { convertLink, describeError, uploadVideo } from "./api.ts";
import { sizeText } from "./format.ts";
import { follow, render } from "./jobs.ts";
import { busy, say, view } from "./page.ts";
import { current, sessionLost } from "./session.ts";
import { refreshUsage } from "./usage.ts";

export const upload = (() => {
  const waiting: File[] = [];
  let running: { cancel(): void } | undefined;

  async function next() {
    const file = waiting.shift();
    if (!file || !current) return;
    const token = current.token;
    const position = waiting.length ? ` (${waiting.length} more waiting)` : "";
    view.upload.hidden = false;
    view.uploadBar.value = 0;
    view.uploadLabel.textContent = `Uploading ${file.name}${position}…`;
    const sending = uploadVideo(token, file, (sent, total) => {
      const percent = total ? Math.floor((sent / total) * 100) : 0;
      view.uploadBar.value = percent;
      view.uploadLabel.textContent =
        sent < total
          ? `Uploading ${file.name}: ${percent}% of ${sizeText(total)}${position}`
          : `Checking ${file.name}…`;
    });
    running = sending;
    try {
      const job = await sending.done;
      if (current?.token !== token) return;
      render(job, "top");
      follow();
      say({ title: `${file.name} is uploaded.`, detail: "Follow its conversion below." });
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
    add(files: Iterable<File>) {
      waiting.push(...files);
      if (!running) void next();
    },
    cancelAll() {
      waiting.length = 0;
      running?.cancel();
    },
  };
})();

view.pick.addEventListener("click", () => view.file.click());
view.file.addEventListener("change", () => {
  if (view.file.files?.length) upload.add(view.file.files);
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
  if (!view.app.hidden && event.dataTransfer?.files.length) upload.add(event.dataTransfer.files);
});

view.linkForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const url = view.link.value.trim();
  const button = view.linkForm.querySelector("button")!;
  busy(button, "Sending…");
  try {
    const job = await convertLink(current!.token, url);
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
