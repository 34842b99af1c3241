// The job list: each conversion's entry (job-card.ts), kept live over event streams or
// polling; what its buttons do is job-actions.ts, set by app.ts.
import { ApiError, getJob, type Job, jobEvents, listJobs } from "./api.ts";
import { describeError } from "./errors.ts";
import { buildCard, dropCover, type Entry, finished, type JobActions, jobName, showJob } from "./job-card.ts";
import { busy, say, view } from "./page.ts";
import { current, sessionLost } from "./session.ts";
import { refreshUsage } from "./usage.ts";

/** Streams held open at once: a browser allows only 6 connections per host over HTTP/1.1. */
const MAX_STREAMS = 3;
const POLL_MS = 4000;

const entries = new Map<string, Entry>();
let nextCursor: string | undefined;
let pollTimer: ReturnType<typeof setTimeout> | undefined;
let actions: JobActions | undefined;

/** What a job's buttons do (job-actions.ts); set before any job is shown. */
export function setJobActions(handlers: JobActions) {
  actions = handlers;
}

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
/** Shows `job` (new or changed) in the list. */
export function render(job: Job, placement: "top" | "bottom" = "top"): Entry {
  let entry = entries.get(job.id);
  const before = entry?.job;
  if (!entry) {
    entry = buildCard(job, actions!);
    entries.set(job.id, entry);
    if (placement === "top") view.jobs.prepend(entry.item);
    else view.jobs.append(entry.item);
  }
  entry.job = job;
  if (before && !finished(before) && finished(job)) {
    view.news.textContent = `${jobName(job)}: ${job.status === "done" ? "converted, ready to play or download" : "could not be converted"}.`;
    refreshUsage(); // its place is free again, and its MP3 stored
  }
  showJob(entry);
  updateEmpty();
  return entry;
}

/** The entry of the job with this id, if it is in the list. */
export const entryOf = (id: string) => entries.get(id);

function updateEmpty() {
  view.empty.hidden = entries.size > 0;
}

/** Stops following a job and lets go of its player and cover. */
function forget(entry: Entry) {
  entry.stream?.abort();
  entry.stream = undefined;
  entry.parts.audio.removeAttribute("src");
  entry.parts.audio.load(); // the player lets go of its connection
  dropCover(entry);
}

/** Empties the list and stops following every job: the session has ended. */
export function clearJobs() {
  clearTimeout(pollTimer);
  for (const entry of entries.values()) forget(entry);
  entries.clear();
  view.jobs.replaceChildren();
  view.news.textContent = "";
}

/** Takes a job off the list (deleted, or gone from the server). */
export function drop(id: string) {
  const entry = entries.get(id);
  if (!entry) return;
  forget(entry);
  entry.item.remove();
  entries.delete(id);
  updateEmpty();
}

export async function loadJobs(cursor?: string) {
  const mine = current;
  if (!mine) return;
  busy(view.older, cursor ? "Loading…" : null);
  try {
    const page = await listJobs(mine.token, cursor);
    if (current !== mine) return;
    for (const job of page.items) render(job, "bottom");
    nextCursor = page.nextCursor;
    view.older.hidden = !nextCursor;
    follow();
  } catch (error) {
    if (!sessionLost(error)) say(describeError(error, "job"), "error");
  } finally {
    busy(view.older, null);
    updateEmpty();
  }
}

view.older.addEventListener("click", () => void loadJobs(nextCursor));

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
  const mine = current;
  for (const entry of [...entries.values()].filter((e) => !finished(e.job) && !e.stream)) {
    if (!mine || current !== mine) return;
    try {
      render(await getJob(mine.token, entry.job.id));
    } catch (error) {
      if (sessionLost(error)) return;
      if (error instanceof ApiError && error.status === 404) drop(entry.job.id);
    }
  }
  follow();
}

/** Follows one job over Server-Sent Events; falls back to a plain GET and retries when the stream breaks. */
async function stream(entry: Entry) {
  const mine = current!;
  const controller = new AbortController();
  entry.stream = controller;
  const id = entry.job.id;
  let failures = 0;
  try {
    while (!controller.signal.aborted && !finished(entry.job)) {
      try {
        for await (const event of jobEvents(mine.token, id, controller.signal)) {
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
        render(await getJob(mine.token, id));
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
