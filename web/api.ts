// The gateway's HTTP API as the page uses it (the account routes are account-api.ts).
// Everything that needs the token sends it as `Authorization: Bearer`: the live status
// stream and the cover too, which is why they are read with fetch (an EventSource or an
// <img src> cannot send that header); the MP3 is played and downloaded through a signed
// link instead (share.ts). A 401 is answered once by renewing the token (session.ts) and
// sending again. How errors are worded is in errors.ts.
import type { JobView, UsageView } from "../gateway/models.ts";
import type { Session as SessionModel } from "../lib/account-models.ts";
import type { ConversionOptions } from "../lib/options.ts";
import { type ServerEvent, SseParser } from "./sse.ts";

/** A job as the gateway shows it (its own model: a type-only import, so no server code is bundled). */
export type Job = JobView;
/** The account's quotas and what is used of them (GET /account/usage). */
export type Usage = UsageView;

/** What a login or a refresh answers: the access token and the session's next refresh token. */
export type Tokens = (typeof SessionModel)["static"];

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

// ── requests ──────────────────────────────────────────────────────────────────
function retryAfterSeconds(value: string | null): number | undefined {
  if (!value) return undefined;
  const seconds = /^\d+$/.test(value.trim()) ? Number(value) : (Date.parse(value) - Date.now()) / 1000;
  return Number.isFinite(seconds) ? Math.max(1, Math.ceil(seconds)) : undefined;
}

export function problemFrom(status: number, text: string, retryAfter: string | null): ApiError {
  let problem: Problem = { status };
  try {
    const body = JSON.parse(text) as Partial<Problem> | null;
    if (body && typeof body === "object") problem = { ...body, status };
  } catch {
    // not JSON (a proxy's error page, say): the status alone has to do
  }
  return new ApiError(status, problem, retryAfterSeconds(retryAfter));
}

export const unreachable = () => new ApiError(0, { status: 0, detail: "the server could not be reached" });

/** What answers a refused token (401): a renewed one to send again with, or null (session.ts sets it). */
let renewRefused: ((refused: string) => Promise<string | null>) | undefined;
export function onTokenRefused(renew: (refused: string) => Promise<string | null>) {
  renewRefused = renew;
}

async function send(path: string, init: RequestInit & { token?: string }): Promise<Response> {
  const { token, ...rest } = init;
  const headers = new Headers(rest.headers);
  if (token) headers.set("authorization", `Bearer ${token}`);
  try {
    return await fetch(path, { ...rest, headers });
  } catch (error) {
    if ((error as Error).name === "AbortError") throw error;
    throw unreachable();
  }
}

/** A request; a token refused (401) is renewed once and the request sent again with the new one. */
export async function call(path: string, init: RequestInit & { token?: string } = {}): Promise<Response> {
  let response = await send(path, init);
  if (response.status === 401 && init.token && renewRefused) {
    const renewed = await renewRefused(init.token);
    if (renewed && renewed !== init.token) {
      await response.body?.cancel().catch(() => {});
      response = await send(path, { ...init, token: renewed });
    }
  }
  if (!response.ok)
    throw problemFrom(response.status, await response.text().catch(() => ""), response.headers.get("retry-after"));
  return response;
}

export const json = (body: unknown, method = "POST"): RequestInit => ({
  method,
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body),
});

export async function register(email: string, password: string): Promise<void> {
  await call("/auth/register", json({ email, password }));
}

export async function login(email: string, password: string): Promise<Tokens> {
  return (await call("/auth/login", json({ email, password }))).json();
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

/** A link to convert, with the conversion options as JSON fields beside `url`. */
export async function convertLink(token: string, url: string, options: ConversionOptions = {}): Promise<Job> {
  return (await call("/jobs", { ...json({ ...options, url }), token })).json();
}

/** The job's cover (JPEG), or null when it has none (404): fetched, since an <img> cannot send the token. */
export async function fetchCover(token: string, job: Job): Promise<Blob | null> {
  if (!job.links.cover) return null;
  try {
    return await (await call(job.links.cover, { token })).blob();
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return null;
    throw error;
  }
}

/**
 * The options as multipart fields, named as in lib/options.ts: numbers and booleans as
 * text, trim points as seconds. Unset options are left out (the server's defaults apply).
 */
export function optionFields(options: ConversionOptions): [string, string][] {
  return Object.entries(options)
    .filter(([, value]) => value !== undefined)
    .map(([name, value]) => [name, String(value)]);
}

/**
 * Uploads one video or audio file as multipart `file`, its options as fields before it,
 * with XMLHttpRequest, the only browser API that reports upload progress. `onProgress`
 * gets bytes sent and the total.
 */
export function uploadVideo(
  token: string,
  file: File,
  options: ConversionOptions,
  onProgress: (sent: number, total: number) => void,
) {
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
    for (const [name, value] of optionFields(options)) form.append(name, value);
    form.append("file", file, file.name);
    xhr.send(form);
  });
  return { done, cancel: () => xhr.abort() };
}

// ── live status ─────────────────────────────────────────────────────────────
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
