// The page: log in, send videos or links, follow each conversion live, play,
// download and delete the MP3s. Plain DOM; every text is set with textContent.
import {
  ApiError,
  type Context,
  type Job,
  type Message,
  type Session,
  convertLink,
  deleteJob,
  describeError,
  fetchAudio,
  getJob,
  jobEvents,
  listJobs,
  login,
  register,
  session,
  uploadVideo,
} from "./api.ts";

/** Streams held open at once: a browser allows only 6 connections per host over HTTP/1.1. */
const MAX_STREAMS = 3;
const POLL_MS = 4000;

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const view = {
  login: $("login-view"),
  app: $("app-view"),
  account: $("account"),
  who: $("who"),
  loginForm: $<HTMLFormElement>("login-form"),
  email: $<HTMLInputElement>("email"),
  password: $<HTMLInputElement>("password"),
  loginMessage: $("login-message"),
  appMessage: $("app-message"),
  appTitle: $("app-title"),
  drop: $("drop"),
  file: $<HTMLInputElement>("file"),
  pick: $<HTMLButtonElement>("pick"),
  upload: $("upload"),
  uploadLabel: $("upload-label"),
  uploadBar: $<HTMLProgressElement>("upload-bar"),
  uploadCancel: $<HTMLButtonElement>("upload-cancel"),
  linkForm: $<HTMLFormElement>("link-form"),
  link: $<HTMLInputElement>("link"),
  jobs: $<HTMLUListElement>("jobs"),
  empty: $("jobs-empty"),
  more: $<HTMLButtonElement>("more"),
  news: $("job-news"),
};

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
    remove: HTMLButtonElement;
    audio: HTMLAudioElement;
  };
  /** the MP3, fetched once for playing and downloading */
  mp3?: Promise<{ url: string; filename: string }>;
  stream?: AbortController;
}

let current: Session | null = null;
const entries = new Map<string, Entry>();
let nextCursor: string | undefined;
let pollTimer: ReturnType<typeof setTimeout> | undefined;
let expiryTimer: ReturnType<typeof setTimeout> | undefined;

// ── small helpers ─────────────────────────────────────────────────────────────
function h<K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<HTMLElementTagNameMap[K]> & { class?: string } = {}, ...children: (Node | string)[]) {
  const { class: className, ...rest } = props;
  const element = Object.assign(document.createElement(tag), rest);
  if (className) element.className = className;
  element.append(...children);
  return element;
}

function show(target: HTMLElement, message: Message | null, kind: "info" | "error" = "info") {
  target.replaceChildren();
  if (!message) return;
  const box = h("div", { class: `message ${kind}` }, h("strong", {}, message.title), ...(message.detail ? [" ", h("span", {}, message.detail)] : []));
  if (kind === "error") box.setAttribute("role", "alert");
  target.append(box);
}
const say = (message: Message | null, kind: "info" | "error" = "info") => show(view.appMessage, message, kind);

function sizeText(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

/** 185 → "3:05", 3725 → "1:02:05" */
function clock(seconds: number): string {
  const total = Math.round(seconds);
  const [hours, minutes, secs] = [Math.floor(total / 3600), Math.floor((total % 3600) / 60), total % 60];
  const two = (n: number) => String(n).padStart(2, "0");
  return hours ? `${hours}:${two(minutes)}:${two(secs)}` : `${minutes}:${two(secs)}`;
}
const hostOf = (url: string | undefined) => {
  try {
    return url ? new URL(url).host : null;
  } catch {
    return null;
  }
};
const finished = (job: Job) => job.status === "done" || job.status === "failed";
const jobName = (job: Job) => job.source.filename || job.source.url || "video";
const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
  });

function busy(button: HTMLButtonElement, label: string | null) {
  if (label !== null) {
    button.dataset.label ??= button.firstChild!.textContent ?? "";
    button.firstChild!.textContent = label;
  } else if (button.dataset.label !== undefined) {
    button.firstChild!.textContent = button.dataset.label;
    delete button.dataset.label;
  }
  button.disabled = label !== null;
}

// ── session ───────────────────────────────────────────────────────────────────
function startSession(value: Session) {
  current = value;
  session.save(value);
  clearTimeout(expiryTimer);
  const left = Date.parse(value.expiresAt) - Date.now();
  expiryTimer = setTimeout(() => endSession({ title: "Your session has expired. Please log in again." }), Math.min(left, 2 ** 31 - 1));
  view.who.textContent = value.email;
  view.who.parentElement!.title = `Logged in as ${value.email}`;
  view.account.hidden = false;
  view.login.hidden = true;
  view.app.hidden = false;
  show(view.loginMessage, null);
  say(null);
  view.appTitle.focus();
  void loadJobs();
}

/** Back to the login form: on log out, on 401 anywhere, when the token expires. */
function endSession(message: Message | null, kind: "info" | "error" = "info") {
  current = null;
  session.clear();
  clearTimeout(expiryTimer);
  clearTimeout(pollTimer);
  for (const entry of entries.values()) forget(entry);
  entries.clear();
  view.jobs.replaceChildren();
  view.news.textContent = "";
  upload.cancelAll();
  view.account.hidden = true;
  view.app.hidden = true;
  view.login.hidden = false;
  view.password.value = "";
  show(view.loginMessage, message, kind);
  view.email.focus();
}

/** Handles what every call may answer; true if the error was dealt with (401: logged out). */
function sessionLost(error: unknown): boolean {
  if (error instanceof ApiError && error.status === 401) {
    endSession({ title: "Your session has ended. Please log in again." }, "error");
    return true;
  }
  return false;
}

view.loginForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const submitter = (event as SubmitEvent).submitter as HTMLButtonElement | null;
  const creating = submitter?.value === "register";
  const buttons = [...view.loginForm.querySelectorAll("button")];
  const email = view.email.value.trim();
  const password = view.password.value;
  buttons.forEach((button) => (button.disabled = true));
  show(view.loginMessage, { title: creating ? "Creating your account…" : "Logging in…" });
  let context: Context = creating ? "register" : "login";
  try {
    if (creating) await register(email, password);
    context = "login";
    const value = await login(email, password);
    startSession(value);
    if (creating) say({ title: "Your account is ready.", detail: "Add a video to convert it to MP3." });
  } catch (error) {
    show(view.loginMessage, describeError(error, context), "error");
    (context === "login" && error instanceof ApiError && error.status === 401 ? view.password : view.email).focus();
  } finally {
    buttons.forEach((button) => (button.disabled = false));
  }
});

$("logout").addEventListener("click", () => endSession({ title: "You have logged out." }));

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
    h("div", { class: "actions" }, parts.play, parts.download, parts.remove),
    parts.audio,
  );
  item.dataset.id = job.id;
  const entry: Entry = { job, item, parts };
  parts.play.addEventListener("click", () => play(entry));
  parts.download.addEventListener("click", () => download(entry));
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
function render(job: Job, placement: "top" | "bottom" = "top"): Entry {
  const before = entries.get(job.id)?.job;
  const entry = entryFor(job, placement);
  entry.job = job;
  if (before && !finished(before) && finished(job)) {
    view.news.textContent = `${jobName(job)}: ${job.status === "done" ? "converted, ready to play or download" : "could not be converted"}.`;
  }
  const { badge, meta, bar, error, play, download } = entry.parts;
  badge.textContent = statusText(job);
  badge.dataset.status = job.status;
  const when = new Date(job.createdAt).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  const facts = [job.source.kind === "url" ? hostOf(job.source.url) : null, job.source.bytes ? `${sizeText(job.source.bytes)} video` : null, when];
  if (job.audio) facts.unshift(`MP3 ${clock(job.audio.durationSec)}, ${sizeText(job.audio.bytes)}`);
  meta.textContent = facts.filter(Boolean).join(" · ");
  bar.hidden = finished(job);
  if (job.progress === 0 && (job.status === "queued" || job.phase === "downloading")) bar.removeAttribute("value"); // indeterminate: waiting
  else bar.value = job.progress;
  error.hidden = job.status !== "failed";
  error.textContent = job.status === "failed" ? `Could not convert: ${job.error ?? "no reason given"}` : "";
  play.hidden = job.status !== "done" || !entry.parts.audio.hidden;
  download.hidden = job.status !== "done";
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
  void entry.mp3?.then(({ url }) => URL.revokeObjectURL(url), () => {});
}

function drop(id: string) {
  const entry = entries.get(id);
  if (!entry) return;
  forget(entry);
  entry.item.remove();
  entries.delete(id);
  updateEmpty();
}

async function loadJobs(cursor?: string) {
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

/**
 * Keeps every unfinished job up to date: the newest few over their event streams,
 * the rest by polling (the streams would otherwise use up the browser's connections).
 */
function follow() {
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
  entry.mp3 ??= fetchAudio(current!.token, entry.job).then(({ blob, filename }) => ({ url: URL.createObjectURL(blob), filename }));
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

// ── sending videos ────────────────────────────────────────────────────────────
const upload = (() => {
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
        sent < total ? `Uploading ${file.name}: ${percent}% of ${sizeText(total)}${position}` : `Checking ${file.name}…`;
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
  }
});

// ── start ─────────────────────────────────────────────────────────────────────
const saved = session.load();
if (saved) startSession(saved);
else endSession(null);
document.body.classList.add("ready");
