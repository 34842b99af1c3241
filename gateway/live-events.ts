// A job's live status as Server-Sent Events. The stream re-reads the job: quickly while
// it is changing (a short job is done within a few hundred ms), slowly once it sits
// still (a long queue wait costs little), and repeats itself now and then to keep the
// connection alive. It ends after done or failed, with a `deleted` event if the job goes
// away, and, every stream at once, when the gateway stops: the HTTP server lets requests
// in flight finish, and would otherwise wait for jobs that may never end. A stream that
// ends cleanly is simply reopened (elsewhere) by the client.
import { sse } from "elysia";
import type { Job } from "../lib/jobs.ts";
import { jobView } from "./view.ts";

const POLL_FAST_MS = 100;
const POLL_MS = 500;
const FAST_FOR_MS = 5000;
const KEEPALIVE_MS = 15_000;

/** The switch that ends every live stream (on stop). */
export function liveStreams() {
  const ending = new AbortController();
  const ended = new Promise<void>((resolve) =>
    ending.signal.addEventListener("abort", () => resolve(), { once: true }),
  );
  return { signal: ending.signal, ended, end: () => ending.abort() };
}
export type LiveStreams = ReturnType<typeof liveStreams>;

export interface JobStream {
  /** The id as the client asked for it (echoed in the `deleted` event). */
  id: string;
  /** The job as it is now; null once it is deleted. */
  reread: (job: Job) => Promise<Job | null>;
  /** The client's request: the stream ends when it goes away. */
  request: Request;
  streams: LiveStreams;
}

/** `status` events for `first` and each change after it, until it is finished, deleted, or the stream is ended. */
export async function* jobStatusEvents(first: Job, { id, reread, request, streams }: JobStream) {
  let job: Job | null = first;
  let last = "";
  let lastSent = 0;
  let changedAt = Date.now();
  while (job && !request.signal.aborted && !streams.signal.aborted) {
    const state = `${job.status}:${job.phase}:${job.progress}`;
    if (state !== last) changedAt = Date.now();
    if (state !== last || Date.now() - lastSent > KEEPALIVE_MS) {
      last = state;
      lastSent = Date.now();
      yield sse({ event: "status", id: `${job.updatedAt.getTime()}`, data: jobView(job) });
    }
    if (job.status === "done" || job.status === "failed") return;
    await Promise.race([Bun.sleep(Date.now() - changedAt < FAST_FOR_MS ? POLL_FAST_MS : POLL_MS), streams.ended]);
    if (streams.signal.aborted) return;
    job = await reread(job);
  }
  if (!job) yield sse({ event: "deleted", data: { id } });
}
