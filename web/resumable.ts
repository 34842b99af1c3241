// Large files go up resumably, over tus (the gateway's /uploads) with tus-js-client, the
// tus project's own client: in 8 MiB PATCHes, each stored as it arrives, so a dropped
// connection costs at most what was in flight. The client retries through a short outage
// by itself (HEAD, then on from the stored offset); the upload's address is kept in
// localStorage under the file's fingerprint (its name, size, date, the account and the
// options), so after a page reload the same file, chosen again, resumes where it stopped.
// The last PATCH answers the job's id (Job-Id); a finished upload whose job could not be
// made then (429, 503) is finished by one empty PATCH at its end.
import { Upload } from "tus-js-client";
import type { ConversionOptions } from "../lib/options.ts";
import { type ApiError, call, type Job, optionFields, problemFrom, unreachable } from "./api.ts";

/** From this size on a file goes over tus; smaller ones go whole in one multipart request (api.ts), nothing to resume. */
export const RESUMABLE_FROM_BYTES = 8 * 1024 * 1024;
const CHUNK_BYTES = 8 * 1024 * 1024;
/** Waits between tries after a failure: about two minutes in all before the page gives up (and a reload resumes). */
const RETRY_DELAYS = [0, 1000, 3000, 5000, 10_000, 20_000, 30_000, 60_000];
const TUS = { "Tus-Resumable": "1.0.0" };

export interface ResumableHooks {
  /** The access token to send (renewed when due: an upload outlives a token). */
  token(): Promise<string | null>;
  /** Bytes sent (those stored before included) and the total. */
  progress(sent: number, total: number): void;
  /** An earlier upload of this file is taken up where it stopped (after a reload, say). */
  resuming(): void;
}

type TusError = Error & {
  originalResponse?: { getStatus(): number; getBody(): string; getHeader(name: string): string | undefined } | null;
};

/** The error tus-js-client gives, as the page's ApiError (status 0: the server could not be reached). */
function apiError(error: TusError): ApiError {
  const response = error.originalResponse;
  if (!response) return unreachable();
  return problemFrom(response.getStatus(), response.getBody() ?? "", response.getHeader("Retry-After") ?? null);
}

/** The job a finished upload made: by its Job-Id, or made now by an empty PATCH at the end. */
async function jobOf(url: string, size: number, jobId: string | undefined, token: string): Promise<Job> {
  if (!jobId) {
    const headers = { ...TUS, "Upload-Offset": String(size), "Content-Type": "application/offset+octet-stream" };
    const finished = await call(url, { method: "PATCH", headers, token });
    jobId = finished.headers.get("Job-Id") ?? undefined;
    if (!jobId) throw problemFrom(500, "", null);
  }
  return (await call(`/jobs/${encodeURIComponent(jobId)}`, { token })).json();
}

/** Uploads `file` with its options over tus for `account`: `done` is the job; `cancel()` stops and removes the upload. */
export function uploadResumable(file: File, options: ConversionOptions, account: string, hooks: ResumableHooks) {
  let fail: (error: unknown) => void = () => {};
  let cancelUpload: () => Promise<void> = async () => {};
  const fields = optionFields(options);
  const done = new Promise<Job>((resolve, reject) => {
    fail = reject;
    const upload: Upload = new Upload(file, {
      endpoint: new URL("/uploads", location.href).href,
      chunkSize: CHUNK_BYTES,
      retryDelays: RETRY_DELAYS,
      removeFingerprintOnSuccess: true,
      metadata: { filename: file.name, filetype: file.type, ...Object.fromEntries(fields) },
      // Another account, or other options, is another upload.
      fingerprint: async () =>
        ["m3dio", account, file.name, file.size, file.lastModified, JSON.stringify(fields)].join("/"),
      onBeforeRequest: async (request) => {
        const token = await hooks.token();
        if (token) request.setHeader("Authorization", `Bearer ${token}`);
      },
      onProgress: (sent, total) => hooks.progress(sent, total),
      // Also while the browser says it is offline (the client's own rule gives up at once then): the delays bound it.
      onShouldRetry: (error) => {
        const status = (error as TusError).originalResponse?.getStatus() ?? 0;
        return status === 0 || status >= 500 || status === 409 || status === 423;
      },
      onSuccess: ({ lastResponse }) =>
        hooks
          .token()
          .then((token) => jobOf(upload.url!, file.size, lastResponse.getHeader("Job-Id"), token ?? ""))
          .then(resolve, reject),
      onError: (error) => reject(apiError(error as TusError)),
    });
    cancelUpload = () => upload.abort(true);
    void upload
      .findPreviousUploads()
      .then((previous) => {
        const last = previous.sort((a, b) => b.creationTime.localeCompare(a.creationTime))[0];
        if (last) {
          upload.resumeFromPreviousUpload(last);
          hooks.resuming();
        }
      })
      .catch(() => {}) // no earlier upload to take up: a new one
      .finally(() => upload.start());
  });
  return {
    done,
    cancel() {
      // Stops sending and removes what is stored (tus termination).
      void cancelUpload().catch(() => {});
      fail(new DOMException("the upload was cancelled", "AbortError"));
    },
  };
}
