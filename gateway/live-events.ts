// A job's live status as Server-Sent Events. The gateway re-reads a followed job once a
// tick, whatever the number of streams following it (a watch per job id, started by the
// first stream and stopped when the last one leaves): quickly while the job is changing
// (a short job is done within a few hundred ms), slowly once it sits still (a long queue
// wait costs little). Each stream sends the job on every change it sees and repeats
// itself now and then to keep the connection alive. It ends after done or failed, with a
// `deleted` event if the job goes away, when a read fails (the client reopens it), and,
// every stream at once, when the gateway stops: the HTTP server lets requests in flight
// finish, and would otherwise wait for jobs that may never end. One user may hold only
// so many streams open at once (MAX_STREAMS_PER_USER): past that, 429.
import { sse } from "elysia";
import type { Job } from "../lib/jobs.ts";
import type { Logger } from "../lib/log.ts";
import { TooManyRequests } from "../lib/problem.ts";
import { jobView, type PlacedJob } from "./view.ts";

const POLL_FAST_MS = 100;
const POLL_MS = 500;
const FAST_FOR_MS = 5000;
const KEEPALIVE_MS = 15_000;
/** What a refused stream is told to wait: streams free up as their jobs finish or their clients leave. */
const STREAM_RETRY_AFTER_S = 5;

/** The job as it is now; null once it is deleted. */
export type Reread = (job: Job) => Promise<Job | null>;

/** One followed job: the reads of its poll loop, which every stream of that job shares. */
export interface Watch {
  key: string;
  /** The job as last read; null once it is deleted. */
  job: Job | null;
  /** The last read failed: the streams of this job end. */
  failed: boolean;
  followers: number;
  changedAt: number;
  /** Resolves after the next read (or once the watch stops). */
  read: Promise<void>;
  wake: () => void;
  /** No more reads: a stream that comes back from a slow client's write takes the last one at once. */
  stopped: boolean;
}

export interface LiveStreamsOptions {
  /** Streams one user may hold open at once; the next one is 429. */
  maxStreamsPerUser: number;
  log: Logger;
}

const finished = (job: Job) => job.status === "done" || job.status === "failed";
/** What a stream tells again when it changes; a queued job's place in line too. */
const stateOf = (job: PlacedJob) => `${job.status}:${job.phase}:${job.progress}:${job.queuePosition}`;

function newWatch(key: string, job: Job): Watch {
  const watch = { key, job, failed: false, followers: 1, changedAt: Date.now(), stopped: false } as Watch;
  wakeAll(watch);
  return watch;
}

/** Wakes every stream waiting for the watch's read, after setting up the next read's promise. */
function wakeAll(watch: Watch) {
  const wake = watch.wake;
  watch.read = new Promise((resolve) => (watch.wake = resolve));
  wake?.();
}

/** Resolves after the watch's next read, or at once if it has stopped. */
const nextRead = (watch: Watch) => (watch.stopped ? Promise.resolve() : watch.read);

/** The gateway's live streams: their watches, each user's count, and the switch that ends them all (on stop). */
export function liveStreams({ maxStreamsPerUser, log }: LiveStreamsOptions) {
  const ending = new AbortController();
  const ended = new Promise<void>((resolve) =>
    ending.signal.addEventListener("abort", () => resolve(), { once: true }),
  );
  const watches = new Map<string, Watch>();
  const openByUser = new Map<string, number>();

  /** Counts a stream of `userId`'s in (429 past the limit); answers the call that counts it out. */
  function admit(userId: string): () => void {
    const open = openByUser.get(userId) ?? 0;
    if (open >= maxStreamsPerUser)
      throw new TooManyRequests(
        `at most ${maxStreamsPerUser} event streams may be open at once per user (MAX_STREAMS_PER_USER); close one first`,
        STREAM_RETRY_AFTER_S,
      );
    openByUser.set(userId, open + 1);
    let counted = true;
    return () => {
      if (!counted) return;
      counted = false;
      const left = (openByUser.get(userId) ?? 1) - 1;
      if (left > 0) openByUser.set(userId, left);
      else openByUser.delete(userId);
    };
  }

  /** The watch of `job`, started (with `reread` as its read) if no stream follows it yet. */
  function follow(job: Job, reread: Reread): Watch {
    const key = job._id.toHexString();
    const watching = watches.get(key);
    if (watching) {
      watching.followers++;
      return watching;
    }
    const watch = newWatch(key, job);
    watches.set(key, watch);
    void poll(watch, reread);
    return watch;
  }

  function unfollow(watch: Watch) {
    if (--watch.followers > 0) return;
    if (watches.get(watch.key) === watch) watches.delete(watch.key);
  }

  /** One read a tick while anyone follows; stops for good once the job is finished, deleted or unreadable. */
  async function poll(watch: Watch, reread: Reread) {
    while (watch.followers > 0 && !ending.signal.aborted) {
      const still = Date.now() - watch.changedAt >= FAST_FOR_MS;
      await Promise.race([Bun.sleep(still ? POLL_MS : POLL_FAST_MS), ended]);
      if (watch.followers === 0 || ending.signal.aborted) break;
      const before = watch.job!;
      try {
        watch.job = await reread(before);
        if (!watch.job || stateOf(watch.job) !== stateOf(before)) watch.changedAt = Date.now();
      } catch (error) {
        watch.failed = true;
        log.warn(
          { event: "store.unavailable", err: error, jobId: watch.key, streams: watch.followers },
          "a followed job could not be read; its event streams end",
        );
      }
      if (watch.failed || !watch.job || finished(watch.job)) break;
      wakeAll(watch);
    }
    // A stream opened from now on starts a watch of its own.
    if (watches.get(watch.key) === watch) watches.delete(watch.key);
    watch.stopped = true;
    wakeAll(watch);
  }

  return {
    signal: ending.signal,
    ended,
    end: () => ending.abort(),
    admit,
    follow,
    unfollow,
  };
}
export type LiveStreams = ReturnType<typeof liveStreams>;

export interface JobStream {
  /** The id as the client asked for it (echoed in the `deleted` event). */
  id: string;
  /** Whose stream it is: the count per user is theirs. */
  userId: string;
  /** The caller's job (404 if not theirs), read once the stream is counted in. */
  open: () => Promise<Job>;
  reread: Reread;
  /** The client's request: the stream ends when it goes away. */
  request: Request;
  streams: LiveStreams;
}

/** Resolves when `signal` aborts. */
const aborted = (signal: AbortSignal) =>
  new Promise<void>((resolve) =>
    signal.aborted ? resolve() : signal.addEventListener("abort", () => resolve(), { once: true }),
  );

/** Of the stream's job and the watch's last read, the later one (a read begun before the stream's own may land after it). */
const later = (job: Job, read: Job | null) => (read === null || read.updatedAt >= job.updatedAt ? read : job);

/** A read's `status` event, made once for every stream that shares the read (the JSON text as is: it has no line breaks). */
const statusEvents = new WeakMap<Job, ReturnType<typeof sse>>();
function statusEvent(job: Job) {
  let event = statusEvents.get(job);
  if (!event) {
    event = sse({ event: "status", id: `${job.updatedAt.getTime()}`, data: JSON.stringify(jobView(job)) });
    statusEvents.set(job, event);
  }
  return event;
}

/** `status` events for the job and each change after it, until it is finished, deleted, or the stream is ended. */
export async function* jobStatusEvents({ id, userId, open, reread, request, streams }: JobStream) {
  const countOut = streams.admit(userId);
  let job: Job | null = null;
  let watch: Watch | undefined;
  try {
    job = await open();
    const gone = aborted(request.signal);
    let last = "";
    let lastSent = 0;
    while (job && !request.signal.aborted && !streams.signal.aborted) {
      const state = stateOf(job);
      if (state !== last || Date.now() - lastSent > KEEPALIVE_MS) {
        last = state;
        lastSent = Date.now();
        yield statusEvent(job);
      }
      if (finished(job)) return;
      watch ??= streams.follow(job, reread);
      await Promise.race([nextRead(watch), streams.ended, gone]);
      if (watch.failed || streams.signal.aborted || request.signal.aborted) return;
      job = later(job, watch.job);
    }
    if (!job) yield sse({ event: "deleted", data: { id } });
  } finally {
    if (watch) streams.unfollow(watch);
    countOut();
  }
}
