// The job list: each conversion's entry, kept live over event streams or polling, and its play, download and delete.
import {
  ApiError,
  deleteJob,
  describeError,
  fetchAudio,
  getJob,
  type Job,
  jobEvents,
  listJobs,
  retryJob,
} from "./api.ts";
import { clock, hostOf, sizeText } from "./format.ts";
import { busy, h, say, view } from "./page.ts";
import { current, sessionLost } from "./session.ts";
import { refreshUsage } from "./usage.ts";

/** Streams held open at once: a browser allows only 6 connections per host over HTTP/1.1. */
const MAX_STREAMS = 3;
const POLL_MS = 4000;

interface Entry {
  job: Job;
  item: HTMLLIElement;
  parts: {
    badge: HTMLElement;
    meta: HTMLElement;
    bar: HTMLProgressElement;
    error: HTMLElement;
    play: HTMLButtonElement;
    download: HTMLButtonElement;
    retry: HTMLButtonElement;
    remove: HTMLButtonElement;
    audio: HTMLAudioElement;
  };
  /** the MP3, fetched once for playing and downloading */
  mp3?: Promise<{ url: string; filename: string }>;
  stream?: AbortController;
}

const entries = new Map<string, Entry>();
let nextCursor: string | undefined;
let pollTimer: ReturnType<typeof setTimeout> | undefined;

const finished = (job: Job) => job.status === "done" || job.status === "failed";
const jobName = (job: Job) => job.source.filename || job.source.url || "video";
const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });

// ── the job list ──────────────────────────────────────────────────────────────
function entryFor(job: Job, placement: "top" | "bottom"): Entry {
  const existing = entries.get(job.id);
  if (existing) return existing;
  const name = jobName(job);
  const hidden = () => h("span", { class: "visually-hidden" }, ` ${name}`);
  const parts = {
    badge: h("span", { class: "badge" }),
    meta: h("p", { class: "meta" }),
    bar: h("progress", { max: 100 }),
    error: h("p", { class: "job-error" }),
    play: h("button", { type: "button" }, "Play", hidden()),
    download: h("button", { type: "button" }, "Download MP3", hidden()),
    retry: h("button", { type: "button" }, "Retry", hidden()),
    remove: h("button", { type: "button", class: "danger" }, "Delete", hidden()),
    audio: h("audio", { controls: true, preload: "metadata", hidden: true }),
  };
  parts.bar.setAttribute("aria-label", `Progress of ${name}`);
  parts.audio.setAttribute("aria-label", `MP3 of ${name}`);
  const title = h("h3", { class: "name", title: name }, name);
  const item = h(
    "li",
    { class: "job" },
    h("div", { class: "head" }, title, parts.badge),
    parts.meta,
    parts.bar,
    parts.error,
    h("div", { class: "actions" }, parts.play, parts.download, parts.retry, parts.remove),
    parts.audio,
  );
  item.dataset.id = job.id;
  const entry: Entry = { job, item, parts };
  parts.play.addEventListener("click", () => play(entry));
  parts.download.addEventListener("click", () => download(entry));
  parts.retry.addEventListener("click", () => retry(entry));
  parts.remove.addEventListener("click", () => remove(entry));
  entries.set(job.id, entry);
  if (placement === "top") view.jobs.prepend(item);
  else view.jobs.append(item);
  return entry;
}

function statusText(job: Job): string {
  if (job.status === "done") return "Done";
  if (job.status === "failed") return "Failed";
  if (job.phase === "downloading") return job.progress > 0 ? `Downloading ${job.progress}%` : "Downloading…";
  return job.status === "queued" ? "Queued" : `Converting ${job.progress}%`;
}

/** Shows `job` (new or changed) in the list. */
export function render(job: Job, placement: "top" | "bottom" = "top"): Entry {
  const before = entries.get(job.id)?.job;
  const entry = entryFor(job, placement);
  entry.job = job;
  if (before && !finished(before) && finished(job)) {
    view.news.textContent = `${jobName(job)}: ${job.status === "done" ? "converted, ready to play or download" : "could not be converted"}.`;
    refreshUsage(); // its place is free again, and its MP3 stored
  }
  const { badge, meta, bar, error, play, download, retry } = entry.parts;
  badge.textContent = statusText(job);
  badge.dataset.status = job.status;
  const when = new Date(job.createdAt).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  const facts = [
    job.source.kind === "url" ? hostOf(job.source.url) : null,
    job.source.bytes ? `${sizeText(job.source.bytes)} video` : null,
    when,
    job.expiresAt ? `kept until ${new Date(job.expiresAt).toLocaleString(undefined, { dateStyle: "medium" })}` : null,
  ];
  if (job.audio) facts.unshift(`MP3 ${clock(job.audio.durationSec)}, ${sizeText(job.audio.bytes)}`);
  meta.textContent = facts.filter(Boolean).join(" · ");
  bar.hidden = finished(job);
  if (job.progress === 0 && (job.status === "queued" || job.phase === "downloading"))
    bar.removeAttribute("value"); // indeterminate: waiting
  else bar.value = job.progress;
  error.hidden = job.status !== "failed";
  error.textContent = job.status === "failed" ? `Could not convert: ${job.error ?? "no reason given"}` : "";
  play.hidden = job.status !== "done" || !entry.parts.audio.hidden;
  download.hidden = job.status !== "done";
  retry.hidden = job.status !== "failed";
  updateEmpty();
  return entry;
}

function updateEmpty() {
  view.empty.hidden = entries.size > 0;
}

/** Stops following a job and lets go of its MP3. */
function forget(entry: Entry) {
  entry.stream?.abort();
  entry.stream = undefined;
  void entry.mp3?.then(
    ({ url }) => URL.revokeObjectURL(url),
    () => {},
  );
}

/** Empties the list and stops following every job: the session has ended. */
export function clearJobs() {
  clearTimeout(pollTimer);
  for (const entry of entries.values()) forget(entry);
  entries.clear();
  view.jobs.replaceChildren();
  view.news.textContent = "";
}

function drop(id: string) {
  const entry = entries.get(id);
  if (!entry) return;
  forget(entry);
  entry.item.remove();
  entries.delete(id);
  updateEmpty();
}

export async function loadJobs(cursor?: string) {
  const token = current?.token;
  if (!token) return;
  busy(view.more, cursor ? "Loading…" : null);
  try {
    const page = await listJobs(token, cursor);
    if (current?.token !== token) return;
    for (const job of page.items) render(job, "bottom");
    nextCursor = page.nextCursor;
    view.more.hidden = !nextCursor;
    follow();
  } catch (error) {
    if (!sessionLost(error)) say(describeError(error, "job"), "error");
  } finally {
    busy(view.more, null);
    updateEmpty();
  }
}

view.more.addEventListener("click", () => void loadJobs(nextCursor));

// ── following each job live ───────────────────────────────────────────────────
/**
 * Keeps every unfinished job up to date: the newest few over their event streams,
 * the rest by polling (the streams would otherwise use up the browser's connections).
 */
export function follow() {
  clearTimeout(pollTimer);
  const open = [...entries.values()].filter((entry) => !finished(entry.job));
  for (const entry of open) {
    if (entry.stream || [...entries.values()].filter((e) => e.stream).length >= MAX_STREAMS) continue;
    void stream(entry);
  }
  if (open.some((entry) => !entry.stream)) pollTimer = setTimeout(poll, POLL_MS);
}

async function poll() {
  const token = current?.token;
  for (const entry of [...entries.values()].filter((e) => !finished(e.job) && !e.stream)) {
    if (!token || current?.token !== token) return;
    try {
      render(await getJob(token, entry.job.id));
    } catch (error) {
      if (sessionLost(error)) return;
      if (error instanceof ApiError && error.status === 404) drop(entry.job.id);
    }
  }
  follow();
}

/** Follows one job over Server-Sent Events; falls back to a plain GET and retries when the stream breaks. */
async function stream(entry: Entry) {
  const token = current!.token;
  const controller = new AbortController();
  entry.stream = controller;
  const id = entry.job.id;
  let failures = 0;
  try {
    while (!controller.signal.aborted && !finished(entry.job)) {
      try {
        for await (const event of jobEvents(token, id, controller.signal)) {
          failures = 0;
          if (event.event === "status") render(JSON.parse(event.data) as Job);
          else if (event.event === "deleted") return drop(id);
        }
      } catch (error) {
        if (controller.signal.aborted || sessionLost(error)) return;
        if (error instanceof ApiError && error.status === 404) return drop(id);
        failures++;
      }
      if (controller.signal.aborted || finished(entry.job)) return;
      // The stream ended early or broke: catch up with one GET, then reopen it after a pause.
      try {
        render(await getJob(token, id));
      } catch (error) {
        if (sessionLost(error)) return;
        if (error instanceof ApiError && error.status === 404) return drop(id);
      }
      await sleep(Math.min(30_000, 500 * 2 ** failures), controller.signal);
    }
  } finally {
    if (entry.stream === controller) entry.stream = undefined;
    if (!controller.signal.aborted && current) follow();
  }
}

// ── play, download, delete ────────────────────────────────────────────────────
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
    entry.parts.remove.focus(); // the Retry button is gone
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
  const next = entry.item.nextElementSibling ?? entry.item.previousElementSibling;
  drop(entry.job.id);
  ((next?.querySelector("button:not([hidden])") as HTMLElement | null) ?? view.appTitle).focus();
}
