// What a job's buttons do: play (the MP3 fetched with the token, as an object URL),
// download, retry a failed job, delete (asked twice on the same button).
import { ApiError, deleteJob, fetchAudio, retryJob } from "./api.ts";
import { describeError } from "./errors.ts";
import { closeMenu, type Entry, type JobActions, jobName } from "./job-card.ts";
import { drop, follow, render } from "./jobs.ts";
import { busy, h, say, view } from "./page.ts";
import { current, sessionLost } from "./session.ts";
import { refreshUsage } from "./usage.ts";

function mp3(entry: Entry) {
  entry.mp3 ??= fetchAudio(current!.token, entry.job).then(({ blob, filename }) => ({
    url: URL.createObjectURL(blob),
    filename,
  }));
  entry.mp3.catch(() => (entry.mp3 = undefined)); // a failed fetch may be tried again
  return entry.mp3;
}

async function play(entry: Entry) {
  const { play: button, audio } = entry.parts;
  busy(button, "Loading…");
  try {
    const { url } = await mp3(entry);
    audio.src = url;
    audio.hidden = false;
    button.hidden = true;
    audio.focus();
    await audio.play().catch(() => {}); // autoplay may be refused; the controls are there
  } catch (error) {
    if (!sessionLost(error)) say(describeError(error, "job"), "error");
  } finally {
    busy(button, null);
  }
}

async function download(entry: Entry) {
  const button = entry.parts.download;
  busy(button, "Preparing…");
  try {
    const { url, filename } = await mp3(entry);
    const link = h("a", { href: url, download: filename, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    say({ title: `Downloading ${filename}.` });
  } catch (error) {
    if (!sessionLost(error)) say(describeError(error, "job"), "error");
  } finally {
    busy(button, null);
  }
}

/** Runs a failed job again: it is queued and followed live like a new one. */
async function retry(entry: Entry) {
  const button = entry.parts.retry;
  busy(button, "Retrying…");
  try {
    render(await retryJob(current!.token, entry.job.id));
    follow();
    say({ title: `Converting ${jobName(entry.job)} again.` });
    firstButton(entry.item)?.focus(); // the Retry button is gone
  } catch (error) {
    if (sessionLost(error)) return;
    if (error instanceof ApiError && error.status === 404) return drop(entry.job.id);
    say(describeError(error, "retry"), "error");
  } finally {
    busy(button, null);
  }
}

/** Delete asks once more on the same button, so a stray tap loses nothing. */
async function remove(entry: Entry) {
  const button = entry.parts.remove;
  if (button.dataset.confirm !== "yes") {
    button.dataset.confirm = "yes";
    button.firstChild!.textContent = "Confirm delete";
    button.classList.add("confirm");
    setTimeout(() => {
      if (!button.isConnected || button.disabled) return;
      delete button.dataset.confirm;
      button.firstChild!.textContent = "Delete";
      button.classList.remove("confirm");
    }, 5000);
    return;
  }
  const name = jobName(entry.job);
  busy(button, "Deleting…");
  try {
    await deleteJob(current!.token, entry.job.id);
    say({ title: `Deleted ${name}.` });
    refreshUsage();
  } catch (error) {
    if (sessionLost(error)) return;
    if (!(error instanceof ApiError && error.status === 404)) {
      busy(button, null);
      return say(describeError(error, "job"), "error");
    }
  }
  closeMenu(entry);
  const next = entry.item.nextElementSibling ?? entry.item.previousElementSibling;
  drop(entry.job.id);
  ((next && firstButton(next)) ?? view.appTitle).focus();
}

/** The first button a person can see in `element` (a folded menu's are not). */
const firstButton = (element: Element) =>
  [...element.querySelectorAll<HTMLButtonElement>("button")].find((button) => button.checkVisibility());

export const jobActions: JobActions = { play, download, retry, remove };
