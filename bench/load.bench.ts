// Load: 50 users at once for a minute, each uploading a small clip (1 s, 160x90 MP4),
// polling the job every 500 ms until it is done, downloading the MP3 and starting over,
// against all four services as processes (test/support/system.ts, two converters, the
// notifier with a local Resend stand-in), MongoDB from MONGODB_URL or the stand-in in a
// process of its own. Reports the API's latency under that load (every request, timed to
// its last byte), throughput, and that every job ended done with no error answer.
// LOAD_SECONDS and LOAD_USERS override the minute and the 50 users.
import { loadavg } from "node:os";
import { runLoad } from "../test/faults/load.ts";
import { bytesOf, startMongoProcess } from "../test/faults/support.ts";
import { makeVideo } from "../test/support/media.ts";
import { type System, startSystem } from "../test/support/system.ts";
import { report } from "./support.ts";

const BENCH = "load";
const USERS = Number(process.env.LOAD_USERS) || 50;
const SECONDS = Number(process.env.LOAD_SECONDS) || 60;

report(BENCH, "load average (1 min) at start", loadavg()[0]!, "");
const mongo = await startMongoProcess();
let system: System | undefined;
let failed = false;
try {
  const video = await bytesOf(await makeVideo({ seconds: 1 }));
  system = await startSystem({ converters: 2, mongoServer: mongo.url });
  const result = await runLoad(system, { users: USERS, durationMs: SECONDS * 1000, video });
  const label = `${USERS} users, ${SECONDS} s`;
  report(BENCH, `API p50, ${label}`, result.all.p50, "ms");
  report(BENCH, `API p99, ${label}`, result.all.p99, "ms");
  report(BENCH, `API max, ${label}`, result.all.max, "ms");
  for (const [kind, figures] of Object.entries(result.byKind)) {
    report(
      BENCH,
      `${kind} p50 / p99 (${figures.count} requests)`,
      figures.p50,
      `ms / ${Math.round(figures.p99 * 10) / 10} ms`,
    );
  }
  report(BENCH, "requests/s", result.requestsPerSecond, "req/s");
  report(BENCH, "jobs done / accepted", result.jobs.done, `of ${result.jobs.accepted}`);
  report(BENCH, "jobs/min (2 converters)", result.jobsPerMinute, "jobs/min");
  report(BENCH, "drain after the load stopped", result.drainMs, "ms");
  report(BENCH, "error answers", result.errors.length, "", "0");
  for (const error of result.errors.slice(0, 10)) process.stderr.write(`error: ${JSON.stringify(error)}\n`);
  failed = result.errors.length > 0 || result.jobs.done !== result.jobs.accepted;
} finally {
  await system?.stop().catch((error) => process.stderr.write(`${error}\n`));
  await mongo.stop();
  report(BENCH, "load average (1 min) at end", loadavg()[0]!, "");
}
process.exit(failed ? 1 : 0);
