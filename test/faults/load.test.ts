// Load: 50 users at once, each uploading a small clip, polling it until it is done,
// downloading the MP3 and starting over, for LOAD_SECONDS (20 s here; the full minute
// is bench/load.bench.ts). Every job ends done, every answer is the expected one, every
// user gets an email per job. Latency is printed, never asserted (BENCHMARKS.md holds it).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { makeVideo } from "../support/media.ts";
import { type System, startSystem } from "../support/system.ts";
import { runLoad } from "./load.ts";
import { bytesOf, eventually, settledStores, startMongoProcess } from "./support.ts";

const USERS = 50;
const LOAD_SECONDS = Number(process.env.LOAD_SECONDS) || 20;

let system: System;
let mongo: Awaited<ReturnType<typeof startMongoProcess>>;
let video: Uint8Array;

beforeAll(async () => {
  const made = makeVideo({ seconds: 1 });
  made.catch(() => {});
  mongo = await startMongoProcess(); // its own process: the test process is busy being 50 users
  system = await startSystem({ converters: 2, mongoServer: mongo.url });
  video = await bytesOf(await made);
}, 90_000);

afterAll(async () => {
  try {
    await system?.stop();
  } finally {
    await mongo?.stop();
  }
}, 30_000);

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
    await eventually("an email per job", () => system.resend!.delivered() === result.jobs.accepted, 30_000, 250);
    expect((await settledStores(system)).problems).toEqual([]);
  }, 240_000);
});
