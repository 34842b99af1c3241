// The load both the load test (test/faults/load.test.ts, short) and the benchmark
// (bench/load.bench.ts, a minute) drive: N users, each in a loop for the duration:
// upload a small clip, poll the job every `pollMs` until it is done, download the MP3,
// start over. Every API request's latency (until its whole body is read) is recorded;
// every answer that is not the expected one is kept as an error.
import { gatewayClient, type User } from "../support/client.ts";
import type { System } from "../support/system.ts";

export interface LoadOptions {
  users: number;
  durationMs: number;
  video: Uint8Array;
  pollMs?: number;
  /** Longest to wait after the duration for the jobs still under way (120 s). */
  drainTimeoutMs?: number;
}

export interface Latencies {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

export interface LoadResult {
  users: number;
  durationMs: number;
  /** Every request: upload, poll, audio. */
  all: Latencies;
  byKind: Record<string, Latencies>;
  requestsPerSecond: number;
  /** Answers other than the expected status (or requests that failed), with what came back. */
  errors: { what: string; status?: number; detail: string }[];
  jobs: { accepted: number; done: number; failed: number; unfinished: number };
  /** Jobs done per minute over the whole run (duration and drain). */
  jobsPerMinute: number;
  /** Time from the end of the duration until the last job was done. */
  drainMs: number;
}

function latencies(values: number[]): Latencies {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
  return { count: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted.at(-1) ?? Number.NaN };
}

export async function runLoad(system: System, options: LoadOptions): Promise<LoadResult> {
  const { users: count, durationMs, video, pollMs = 500, drainTimeoutMs = 120_000 } = options;
  const http = gatewayClient(system.gatewayUrl, { inbox: system.resend });
  const users: User[] = [];
  // Accounts first, a few at a time (logins are deliberately slow: argon2id, unless the system's auth hashes cheaply as in tests), not measured.
  for (let i = 0; i < count; i += 10)
    users.push(...(await Promise.all(Array.from({ length: Math.min(10, count - i) }, () => http.newUser("load")))));

  const timings = new Map<string, number[]>();
  const errors: LoadResult["errors"] = [];
  const jobs = { accepted: 0, done: 0, failed: 0, unfinished: 0 };

  /** One request, timed to its last byte; answers the body when the status is the expected one. */
  async function timed(
    what: string,
    expected: number,
    path: string,
    init: RequestInit,
  ): Promise<ArrayBuffer | undefined> {
    const started = performance.now();
    try {
      const answer = await fetch(`${system.gatewayUrl}${path}`, { ...init, signal: AbortSignal.timeout(30_000) });
      const body = await answer.arrayBuffer();
      const list = timings.get(what) ?? timings.set(what, []).get(what)!;
      list.push(performance.now() - started);
      if (answer.status === expected) return body;
      errors.push({ what, status: answer.status, detail: new TextDecoder().decode(body).slice(0, 300) });
    } catch (error) {
      errors.push({ what, detail: `${(error as Error).name}: ${(error as Error).message}` });
    }
    return undefined;
  }

  const started = Date.now();
  const deadline = started + durationMs;
  let lastDone = started;
  const form = () => {
    const data = new FormData();
    data.append("file", new Blob([video as Uint8Array<ArrayBuffer>], { type: "video/mp4" }), "clip.mp4");
    return data;
  };

  async function user(who: User) {
    // Users start spread over the first second, as they would arrive.
    await Bun.sleep(Math.random() * 1000);
    while (Date.now() < deadline) {
      const created = await timed("upload", 202, "/jobs", { method: "POST", headers: who.headers, body: form() });
      if (!created) {
        await Bun.sleep(pollMs);
        continue;
      }
      jobs.accepted++;
      const { id } = JSON.parse(new TextDecoder().decode(created)) as { id: string };
      let status = "queued";
      while (status === "queued" || status === "converting") {
        if (Date.now() > deadline + drainTimeoutMs) {
          jobs.unfinished++;
          return;
        }
        await Bun.sleep(pollMs);
        const body = await timed("poll", 200, `/jobs/${id}`, { headers: who.headers });
        if (body) status = (JSON.parse(new TextDecoder().decode(body)) as { status: string }).status;
      }
      if (status === "done") {
        jobs.done++;
        lastDone = Date.now();
        await timed("audio", 200, `/jobs/${id}/audio`, { headers: who.headers });
      } else jobs.failed++;
    }
  }

  await Promise.all(users.map(user));
  const ended = Date.now();
  const every = [...timings.values()].flat();
  return {
    users: count,
    durationMs,
    all: latencies(every),
    byKind: Object.fromEntries([...timings].map(([what, values]) => [what, latencies(values)])),
    requestsPerSecond: every.length / ((ended - started) / 1000),
    errors,
    jobs,
    jobsPerMinute: jobs.done / ((lastDone - started) / 60_000),
    drainMs: Math.max(0, lastDone - deadline),
  };
}
