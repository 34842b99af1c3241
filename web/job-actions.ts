// What a job's buttons do: play and download (through the MP3's signed link, share.ts),
// copy a share link and stop sharing (share.ts), retry a failed job, delete (asked twice
// on the same button).

import { mp3Filename } from "../lib/filenames.ts";
import { ApiError, deleteJob, retryJob } from "./api.ts";
import { describeError } from "./errors.ts";
import { closeMenu, type Entry, type JobActions, jobName } from "./job-card.ts";
import { drop, follow, render } from "./jobs.ts";
import { busy, h, say, view } from "./page.ts";
import { current, sessionLost } from "./session.ts";
import { samePage, sharing, signedLink } from "./share.ts";
import { refreshUsage } from "./usage.ts";

async function play(entry: Entry) {
  const { play: button, audio } = entry.parts;
  busy(button, "Loading…");
  try {
    audio.src = samePage(await signedLink(entry));
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

/** The signed link, followed: the server names the file (Content-Disposition: attachment). */
async function download(entry: Entry) {
  const button = entry.parts.download;
  busy(button, "Preparing…");
  try {
    const link = h("a", { href: samePage(await signedLink(entry)), download: "", hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    say({ title: `Downloading ${mp3Filename(entry.job.source.filename)}.` });
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

export const jobActions: JobActions = { play, download, ...sharing, retry, remove };
