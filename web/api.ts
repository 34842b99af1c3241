// The gateway's HTTP API as the page uses it, and the wording of its errors.
// Everything that needs the token sends it as `Authorization: Bearer`: the live
// status stream and the MP3 too, which is why they are read with fetch (an
// EventSource or an <audio src> cannot send that header).
import type { JobView, UsageView } from "../gateway/models.ts";
import { mp3Filename } from "../lib/filenames.ts";

/** A job as the gateway shows it (its own model: a type-only import, so no server code is bundled). */
export type Job = JobView;
/** The account's quotas and what is used of them (GET /account/usage). */
export type Usage = UsageView;

export interface Session {
  token: string;
  expiresAt: string;
  email: string;
}

/** An RFC 9457 problem as the API answers it, plus what the page needs to word it. */
export interface Problem {
  status: number;
  title?: string;
  detail?: string;
  errors?: { field: string; message: string }[];
  /** Which of the account's quotas refused it (413, 429), with its limit and what was used. */
  quota?: "activeJobs" | "storedBytes";
  limit?: number;
  used?: number;
}

export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    /** the HTTP status; 0 when the gateway could not be reached at all */
    readonly status: number,
    readonly problem: Problem,
    /** seconds, from a Retry-After header */
    readonly retryAfter?: number,
  ) {
    super(problem.detail ?? problem.title ?? `HTTP ${status}`);
  }
}

// ── the session (sessionStorage: gone when the tab closes) ─────────────────────
const SESSION_KEY = "m3dio.session";

export const session = {
  load(): Session | null {
    try {
      const saved = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? "null") as Session | null;
      return saved?.token && Date.parse(saved.expiresAt) > Date.now() ? saved : null;
    } catch {
      return null;
    }
  },
  save: (value: Session) => sessionStorage.setItem(SESSION_KEY, JSON.stringify(value)),
  clear: () => sessionStorage.removeItem(SESSION_KEY),
};

// ── requests ──────────────────────────────────────────────────────────────────
function retryAfterSeconds(value: string | null): number | undefined {
  if (!value) return undefined;
  const seconds = /^\d+$/.test(value.trim()) ? Number(value) : (Date.parse(value) - Date.now()) / 1000;
  return Number.isFinite(seconds) ? Math.max(1, Math.ceil(seconds)) : undefined;
}

function problemFrom(status: number, text: string, retryAfter: string | null): ApiError {
  let problem: Problem = { status };
  try {
    const body = JSON.parse(text) as Partial<Problem> | null;
    if (body && typeof body === "object") problem = { ...body, status };
  } catch {
    // not JSON (a proxy's error page, say): the status alone has to do
  }
  return new ApiError(status, problem, retryAfterSeconds(retryAfter));
}

const unreachable = () => new ApiError(0, { status: 0, detail: "the server could not be reached" });

async function call(path: string, init: RequestInit & { token?: string } = {}): Promise<Response> {
  const { token, ...rest } = init;
  const headers = new Headers(rest.headers);
  if (token) headers.set("authorization", `Bearer ${token}`);
  let response: Response;
  try {
    response = await fetch(path, { ...rest, headers });
  } catch (error) {
    if ((error as Error).name === "AbortError") throw error;
    throw unreachable();
  }
  if (!response.ok)
    throw problemFrom(response.status, await response.text().catch(() => ""), response.headers.get("retry-after"));
  return response;
}

const json = (body: unknown): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body),
});

export async function register(email: string, password: string): Promise<void> {
  await call("/auth/register", json({ email, password }));
}

export async function login(email: string, password: string): Promise<Session> {
  const answer = (await (await call("/auth/login", json({ email, password }))).json()) as {
    token: string;
    expiresAt: string;
  };
  return { ...answer, email };
}

export async function listJobs(token: string, cursor?: string): Promise<{ items: Job[]; nextCursor?: string }> {
  const query = new URLSearchParams({ limit: "20", ...(cursor ? { cursor } : {}) });
  return (await call(`/jobs?${query}`, { token })).json();
}

export async function getJob(token: string, id: string): Promise<Job> {
  return (await call(`/jobs/${encodeURIComponent(id)}`, { token })).json();
}

export async function deleteJob(token: string, id: string): Promise<void> {
  await call(`/jobs/${encodeURIComponent(id)}`, { method: "DELETE", token });
}

/** Runs a failed job again: the job, queued. */
export async function retryJob(token: string, id: string): Promise<Job> {
  return (await call(`/jobs/${encodeURIComponent(id)}/retry`, { method: "POST", token })).json();
}

export async function getUsage(token: string): Promise<Usage> {
  return (await call("/account/usage", { token })).json();
}

export async function convertLink(token: string, url: string): Promise<Job> {
  return (await call("/jobs", { ...json({ url }), token })).json();
}

/** The MP3 as a Blob, with the name the server gives it. */
export async function fetchAudio(token: string, job: Job): Promise<{ blob: Blob; filename: string }> {
  const response = await call(`/jobs/${encodeURIComponent(job.id)}/audio`, { token });
  const blob = await response.blob();
  return {
    blob,
    filename: filenameFrom(response.headers.get("content-disposition")) ?? mp3Filename(job.source.filename),
  };
}

/** `filename*=UTF-8''…` (preferred) or `filename="…"` from a Content-Disposition header. */
export function filenameFrom(disposition: string | null): string | undefined {
  if (!disposition) return undefined;
  const extended = /filename\*\s*=\s*(?:UTF-8|utf-8)''([^;]+)/.exec(disposition)?.[1];
  if (extended) {
    try {
      return decodeURIComponent(extended.trim());
    } catch {
      // malformed escapes: fall through to the plain name
    }
  }
  return (
    /filename\s*=\s*"((?:[^"\\]|\\.)*)"/.exec(disposition)?.[1]?.replace(/\\(.)/g, "$1") ??
    /filename\s*=\s*([^;\s]+)/.exec(disposition)?.[1]
  );
}

/**
 * Uploads one video as multipart `file` with XMLHttpRequest, the only browser API
 * that reports upload progress. `onProgress` gets bytes sent and the total.
 */
export function uploadVideo(token: string, file: File, onProgress: (sent: number, total: number) => void) {
  const xhr = new XMLHttpRequest();
  const done = new Promise<Job>((resolve, reject) => {
    xhr.open("POST", "/jobs");
    xhr.setRequestHeader("authorization", `Bearer ${token}`);
    xhr.upload.onprogress = (event) => onProgress(event.loaded, event.lengthComputable ? event.total : file.size);
    xhr.onload = () => {
      if (xhr.status === 202) {
        try {
          resolve(JSON.parse(xhr.responseText) as Job);
        } catch {
          reject(problemFrom(500, "", null));
        }
      } else reject(problemFrom(xhr.status, xhr.responseText, xhr.getResponseHeader("retry-after")));
    };
    // Servers that refuse a large body early (413) may close the connection mid-upload.
    xhr.onerror = () => reject(unreachable());
    xhr.onabort = () => reject(new DOMException("the upload was cancelled", "AbortError"));
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
  return { done, cancel: () => xhr.abort() };
}

// ── live status: Server-Sent Events read from a fetch body ──────────────────────
export interface ServerEvent {
  event: string;
  data: string;
  id?: string;
}

/**
 * A Server-Sent Events parser (the text/event-stream format of the HTML standard):
 * feed it text as it arrives, in chunks split anywhere, and it hands back the
 * complete events. Handles LF, CR and CRLF line ends, comments and multi-line data.
 */
export class SseParser {
  private buffer = "";
  private data: string[] = [];
  private event = "";
  private id: string | undefined;

  push(chunk: string): ServerEvent[] {
    this.buffer += chunk;
    const events: ServerEvent[] = [];
    for (;;) {
      const end = this.buffer.search(/\r\n|\r|\n/);
      // A lone CR at the very end may be the first half of a CRLF: wait for more.
      if (end === -1 || (end === this.buffer.length - 1 && this.buffer[end] === "\r")) break;
      const line = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + (this.buffer.startsWith("\r\n", end) ? 2 : 1));
      const event = this.line(line);
      if (event) events.push(event);
    }
    return events;
  }

  private line(line: string): ServerEvent | undefined {
    if (line === "") {
      const event = this.data.length
        ? {
            event: this.event || "message",
            data: this.data.join("\n"),
            ...(this.id !== undefined ? { id: this.id } : {}),
          }
        : undefined;
      this.data = [];
      this.event = "";
      return event;
    }
    if (line.startsWith(":")) return undefined; // a comment (keep-alive)
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id" && !value.includes("\0")) this.id = value;
    return undefined;
  }
}

/** The job's events until the server ends the stream (after done or failed) or `signal` aborts. */
export async function* jobEvents(token: string, id: string, signal: AbortSignal): AsyncGenerator<ServerEvent> {
  const response = await call(`/jobs/${encodeURIComponent(id)}/events`, {
    token,
    signal,
    headers: { accept: "text/event-stream" },
  });
  if (!response.body) return;
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new SseParser();
  try {
    for (;;) {
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (error) {
        if (signal.aborted) return;
        throw (error as Error).name === "AbortError" ? error : unreachable();
      }
      if (chunk.done) return;
      yield* parser.push(chunk.value);
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

// ── errors, worded for a person ───────────────────────────────────────────────
export type Context = "login" | "register" | "upload" | "link" | "job" | "retry";

export interface Message {
  title: string;
  detail?: string;
}

/** "the file is not a video" → "The file is not a video." */
export function sentence(text: string | undefined): string | undefined {
  const trimmed = text?.trim();
  if (!trimmed) return undefined;
  const capital = trimmed[0]!.toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

/** 45 → "45 seconds", 900 → "15 minutes", 5400 → "2 hours". */
export function duration(seconds: number): string {
  const unit = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
  if (seconds < 90) return unit(Math.max(1, Math.round(seconds)), "second");
  if (seconds < 90 * 60) return unit(Math.round(seconds / 60), "minute");
  return unit(Math.round(seconds / 3600), "hour");
}

/** What to tell the person about `error`; `name` is the file or link concerned. */
export function describeError(error: unknown, context: Context, name = "That file"): Message {
  if (!(error instanceof ApiError))
    return { title: "Something went wrong in this page.", detail: sentence((error as Error)?.message) };
  const detail = sentence(error.problem.detail);
  const wait = error.retryAfter ? duration(error.retryAfter) : undefined;
  switch (error.status) {
    case 0:
      return { title: "Can't reach m3dio.", detail: "Check your connection and try again." };
    case 401:
      return context === "login"
        ? { title: detail ?? "Wrong email or password." }
        : { title: "Your session has ended. Please log in again.", detail };
    case 404:
      return { title: "That conversion no longer exists.", detail };
    case 409:
      if (context === "register") return { title: detail ?? "That email already has an account." };
      return context === "retry"
        ? { title: "That conversion can't be retried now.", detail }
        : { title: "The MP3 isn't ready yet.", detail };
    case 410:
      return { title: "That conversion's files are no longer kept.", detail };
    case 413:
      if (error.problem.quota === "storedBytes")
        return context === "link"
          ? { title: "Your storage is full: there is no room for that link's video.", detail }
          : { title: `Your storage is full: there is no room for ${quote(name)}.`, detail };
      return { title: `${quote(name)} is too large to upload.`, detail };
    case 415:
      return context === "link"
        ? { title: "That link doesn't lead to a video we can convert.", detail }
        : { title: `${quote(name)} isn't a video we can convert.`, detail };
    case 422: {
      const fields = error.problem.errors
        ?.map((issue) =>
          sentence(`${issue.field}: ${issue.message.replace(/^\p{Lu}(?!\p{Lu})/u, (c) => c.toLowerCase())}`),
        )
        .join(" ");
      if (context === "register" || context === "login")
        return { title: "Please check your email and password.", detail: fields || detail };
      if (context === "link") return { title: "That link can't be used.", detail };
      return { title: "The upload could not be read.", detail };
    }
    case 429:
      if (error.problem.quota === "activeJobs")
        return {
          title: `You have ${error.problem.limit ?? "the most"} conversions under way already. Please try again in ${wait ?? "a while"}, once one has finished.`,
          detail,
        };
      return { title: `Too many attempts. Please wait ${wait ?? "a while"} before trying again.`, detail };
    case 503:
      return { title: `m3dio is briefly unavailable. Please try again in ${wait ?? "a moment"}.`, detail };
    default:
      return error.status >= 500
        ? { title: "Something went wrong on our side. Please try again.", detail }
        : { title: `The request failed (${error.status}).`, detail };
  }
}

const quote = (name: string) => (name === "That file" ? name : `“${name}”`);
