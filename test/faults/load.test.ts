// Load: 50 users at once, each uploading a small clip, polling it until it is done,
// downloading the MP3 and starting over, for LOAD_SECONDS (8 s here: enough for every
// user to go round more than once; the full minute is bench/load.bench.ts). Every job
// ends done, every answer is the expected one, every user gets an email per job.
// Latency is printed, never asserted (BENCHMARKS.md holds it).
import { beforeAll, describe, expect, test } from "bun:test";
import { runLoad } from "./load.ts";
import { eventually, settledStores } from "./support.ts";
import { type FaultSystem, faultSetup } from "./system.ts";

const USERS = 50;
const LOAD_SECONDS = Number(process.env.LOAD_SECONDS) || 8;

let system: FaultSystem;
let video: Uint8Array;

beforeAll(async () => {
  // Two converters; MongoDB in a process of its own: this one is busy being 50 users.
  ({ system, video } = await faultSetup({ videoSeconds: 1 }));
}, 90_000);

describe("load", () => {
  test(`${USERS} users uploading small clips for ${LOAD_SECONDS} s: every job done, no error answers`, async () => {
    const result = await runLoad(system, { users: USERS, durationMs: LOAD_SECONDS * 1000, video });
    const ms = (value: number) => Math.round(value * 10) / 10;
    console.log(
      JSON.stringify({
        load: `${USERS} users, ${LOAD_SECONDS} s`,
        jobs: result.jobs,
        jobsPerMinute: Math.round(result.jobsPerMinute),
        requestsPerSecond: Math.round(result.requestsPerSecond),
        p50ms: ms(result.all.p50),
        p99ms: ms(result.all.p99),
        maxMs: ms(result.all.max),
        byKind: Object.fromEntries(
          Object.entries(result.byKind).map(([kind, l]) => [
            kind,
            { count: l.count, p50ms: ms(l.p50), p99ms: ms(l.p99) },
          ]),
        ),
      }),
    );
    expect(result.errors).toEqual([]);
    expect(result.jobs.accepted).toBeGreaterThanOrEqual(USERS); // everyone got at least one through
    expect(result.jobs).toEqual({
      accepted: result.jobs.accepted,
      done: result.jobs.accepted,
      failed: 0,
      unfinished: 0,
    });
    await eventually("an email per job", () => system.resend!.delivered("job-") === result.jobs.accepted, 30_000, 250);
    expect((await settledStores(system)).problems).toEqual([]);
  }, 240_000);
});
