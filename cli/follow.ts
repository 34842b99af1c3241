// Following a job until it is done or failed, over its live events (`GET /jobs/:id/events`,
// a `status` event with the job on each change). The gateway ends a stream when it stops or
// a read fails, and a connection can go quiet: then the job is read once, and followed again
// if it is not finished. Only a server that stays away for a while ends it with exit 4.
import type { JobView } from "../gateway/models.ts";
import { EventStreamDecoder, type SseEvent } from "../lib/event-stream.ts";
import type { Api } from "./api.ts";
import { answerError, CliError, EXIT } from "./errors.ts";

/** The gateway repeats itself every 15 s: a stream silent for this long is dead. */
const IDLE_MS = 45_000;
/** Tries in a row that get no stream before giving up (about half a minute). */
const MAX_FAILED_TRIES = 15;
const RETRY_MS = 2000;

export const isFinished = (job: JobView) => job.status === "done" || job.status === "failed";

/** Follows the job until it is done or failed, calling `seen` with each state; answers the last. */
export async function followJob(api: Api, job: JobView, seen: (job: JobView) => void): Promise<JobView> {
  let last = job;
  seen(last);
  for (let failures = 0; !isFinished(last); ) {
    const streamed = await streamOnce(api, last.id, (view) => {
      last = view;
      seen(view);
    });
    if (isFinished(last)) break;
    // The stream ended early, or there was none: read the job, and follow it again if need be.
    try {
      last = await api.json<JobView>(`/jobs/${last.id}`, "could not read the job");
      seen(last);
      failures = streamed ? 0 : failures + 1;
    } catch (error) {
      if (!(error instanceof CliError) || error.exitCode !== EXIT.unavailable || ++failures >= MAX_FAILED_TRIES)
        throw error;
    }
    if (!isFinished(last) && !streamed) await Bun.sleep(RETRY_MS);
  }
  return last;
}

/**
 * One stream of the job's events, read until it ends, breaks or goes quiet: true if it was
 * open at all. A refusal other than "too many streams" or "unavailable" is thrown.
 */
async function streamOnce(api: Api, id: string, seen: (job: JobView) => void): Promise<boolean> {
  const stop = new AbortController();
  let answer: Response;
  try {
    answer = await api.send(`/jobs/${id}/events`, {
      headers: { accept: "text/event-stream" },
      timeoutMs: null,
      signal: stop.signal,
    });
  } catch (error) {
    if (error instanceof CliError && error.exitCode === EXIT.unavailable) return false;
    throw error;
  }
  if (answer.status === 429 || answer.status >= 500) {
    await answer.body?.cancel();
    return false;
  }
  if (!answer.ok || !answer.body) throw await answerError(answer, "could not follow the job");
  for await (const event of events(answer.body, stop)) {
    if (event.event === "deleted") throw new CliError(EXIT.failed, "the job was deleted before it finished");
    if (event.event === "status") seen(JSON.parse(event.data) as JobView);
  }
  return true;
}

/** The stream's events until it ends, breaks or is silent for IDLE_MS (then it is aborted). */
async function* events(body: ReadableStream<Uint8Array>, stop: AbortController): AsyncGenerator<SseEvent> {
  const reader = body.getReader();
  const text = new TextDecoder();
  const decoder = new EventStreamDecoder();
  let watchdog = setTimeout(() => stop.abort(), IDLE_MS);
  try {
    for (;;) {
      const chunk = await reader.read().catch(() => ({ done: true as const, value: undefined }));
      clearTimeout(watchdog);
      if (chunk.done) break;
      watchdog = setTimeout(() => stop.abort(), IDLE_MS);
      yield* decoder.push(text.decode(chunk.value, { stream: true }));
    }
    yield* decoder.end();
  } finally {
    clearTimeout(watchdog);
    await reader.cancel().catch(() => {});
  }
}
