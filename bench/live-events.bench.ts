// gateway CPU and other calls' p99 with 3,000 streams open on one job (issue 15): the
// gateway as a real process (`bun gateway.ts`) with a real auth process, RabbitMQ (a
// vhost of its own) and MongoDB (MONGODB_URL, or the stand-in in a process of its own).
// One user holds STREAMS `GET /jobs/:id/events` streams open on one of their jobs while
// another user's `GET /jobs/:id` is driven at 8 connections; the gateway's CPU is read
// from /proc/<pid>/stat (all its threads). Phases: no streams; the job sitting still
// (queued); the job changing (progress set every 250 ms straight in MongoDB, as the
// converter would); and the default MAX_STREAMS_PER_USER, where the same user's
// STREAMS attempts are mostly answered 429. The load generator shares the machine's cores.
import { readFileSync } from "node:fs";
import { MongoClient, ObjectId } from "mongodb";
import { gatewayClient, type User } from "../test/support/client.ts";
import { cachedVideo, drive, report, reportLoad, type Service, startBenchStack, startService } from "./support.ts";

const BENCH = "live-events";
const STREAMS = Number(process.env.STREAMS ?? 3000);
const WINDOW_MS = 10_000;
const OPENING_AT_ONCE = 100;
/** Opening stops here: before issue 15 each open stream's own reads slow every later open. */
const OPENING_FOR_MS = 120_000;
const CLOCK_TICKS = 100; // USER_HZ on Linux

// Bun's fetch holds at most 256 requests open at once (the rest wait their turn): far
// fewer than the streams, so the benchmark runs itself again with room for them all.
if (!process.env.BUN_CONFIG_MAX_HTTP_REQUESTS) {
  const env = { ...process.env, BUN_CONFIG_MAX_HTTP_REQUESTS: String(STREAMS + 1000) };
  const again = Bun.spawn([process.execPath, import.meta.path], { env, stdio: ["inherit", "inherit", "inherit"] });
  process.exit(await again.exited);
}

/** The process's CPU time so far (user + system, all threads), in seconds. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS; // utime, stime (fields 14 and 15)
}

/** The process's CPU use while `work` runs (or for `ms` when there is none), in % of one core. */
async function cpuDuring(pid: number, work: () => Promise<unknown>): Promise<number> {
  const [cpu, started] = [cpuSeconds(pid), performance.now()];
  await work();
  return ((cpuSeconds(pid) - cpu) / ((performance.now() - started) / 1000)) * 100;
}

interface Followed {
  status: number;
  statusEvents: number;
  close(): void;
  ended: Promise<void>;
}

/** Opens one event stream and counts its `status` events in the background until closed or ended. */
async function follow(url: string, headers: Record<string, string>): Promise<Followed> {
  const closing = new AbortController();
  const response = await fetch(url, { headers, signal: closing.signal });
  const followed: Followed = {
    status: response.status,
    statusEvents: 0,
    close: () => closing.abort(),
    ended: Promise.resolve(),
  };
  if (response.status !== 200) {
    await response.body?.cancel();
    return followed;
  }
  followed.ended = (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of response.body!) {
        followed.statusEvents += decoder.decode(chunk).split("event: status").length - 1;
      }
    } catch {
      // closed by us
    }
  })();
  return followed;
}

/** Up to `count` streams of the job, OPENING_AT_ONCE at a time, no new batch after OPENING_FOR_MS. */
async function openStreams(base: string, user: User, jobId: string, count: number): Promise<Followed[]> {
  const streams: Followed[] = [];
  const deadline = performance.now() + OPENING_FOR_MS;
  while (streams.length < count && performance.now() < deadline) {
    const batch = Math.min(OPENING_AT_ONCE, count - streams.length);
    streams.push(
      ...(await Promise.all(Array.from({ length: batch }, () => follow(`${base}/jobs/${jobId}/events`, user.headers)))),
    );
    if (streams.length % 500 === 0) process.stderr.write(`${streams.length} streams asked for\n`);
  }
  return streams;
}

/** The other user's GET /jobs/:id at 8 connections for WINDOW_MS. */
async function otherCalls(base: string, user: User, jobId: string) {
  const result = await drive(8, WINDOW_MS, async () => {
    const response = await fetch(`${base}/jobs/${jobId}`, { headers: user.headers });
    if (response.status !== 200) throw new Error(`GET /jobs/:id answered ${response.status}`);
    await response.arrayBuffer();
  });
  if (result.errors) process.stderr.write(`GET /jobs/:id: ${result.errors} errors (${result.firstError})\n`);
  return result;
}

/** CPU with nothing else asked of the gateway, then other calls' latency; both reported under `phase`. */
async function measure(phase: string, gateway: Service, base: string, other: { user: User; jobId: string }) {
  report(BENCH, `gateway CPU, ${phase}`, await cpuDuring(gateway.pid, () => Bun.sleep(WINDOW_MS)), "% of a core");
  let calls: Awaited<ReturnType<typeof otherCalls>> | undefined;
  const busy = await cpuDuring(gateway.pid, async () => (calls = await otherCalls(base, other.user, other.jobId)));
  report(BENCH, `gateway CPU while serving the other calls, ${phase}`, busy, "% of a core");
  report(BENCH, `other calls (GET /jobs/:id, 8 connections) req/s, ${phase}`, calls!.perSecond, "req/s");
  report(BENCH, `other calls p50, ${phase}`, calls!.p50, "ms");
  report(BENCH, `other calls p99, ${phase}`, calls!.p99, "ms");
}

reportLoad(BENCH, "start");
const { mongoUrl, vhost, auth, stop } = await startBenchStack();
const direct = new MongoClient(mongoUrl);
let changes: Timer | undefined;
try {
  const env = { AUTH_URL: auth.url, MONGODB_URL: mongoUrl, AMQP_URL: vhost.url };
  // The limit out of the way first: what the shared reads alone do for STREAMS streams.
  const gateway = await startService("gateway", { ...env, MAX_STREAMS_PER_USER: String(STREAMS + 100) });
  const base = gateway.url;
  const http = gatewayClient(base);
  const video = readFileSync(await cachedVideo("header-1s-160x90", { seconds: 1, faststart: true }));
  const [owner, otherUser] = [await http.newUser("streams"), await http.newUser("other")];
  const followedJob = await http.upload(owner, video, "followed.mp4");
  const other = { user: otherUser, jobId: (await http.upload(otherUser, video, "other.mp4")).id };

  await measure("no streams", gateway, base, other);

  const started = performance.now();
  const streams = await openStreams(base, owner, followedJob.id, STREAMS);
  const open = streams.filter((stream) => stream.status === 200).length;
  report(BENCH, `streams open of ${STREAMS} (limit lifted; opening stops after ${OPENING_FOR_MS / 1000} s)`, open, "");
  report(BENCH, `time to open them, ${OPENING_AT_ONCE} at a time`, performance.now() - started, "ms");
  await Bun.sleep(6000); // past the fast re-reads that follow a stream's start
  await measure(`${open} streams on a job sitting still`, gateway, base, other);

  const jobs = direct.db().collection("jobs");
  const _id = new ObjectId(followedJob.id);
  await jobs.updateOne({ _id }, { $set: { status: "converting", phase: "converting", updatedAt: new Date() } });
  let changesMade = 0;
  changes = setInterval(() => {
    changesMade++;
    void jobs.updateOne({ _id }, { $set: { progress: changesMade % 100, updatedAt: new Date() } });
  }, 250);
  const eventsBefore = streams.map((stream) => stream.statusEvents);
  const changesBefore = changesMade;
  await measure(`${open} streams on a job changing 4 times a second`, gateway, base, other);
  const seen = streams.map((stream, i) => stream.statusEvents - eventsBefore[i]!);
  report(BENCH, "changes made while measuring the changing job", changesMade - changesBefore, "");
  report(BENCH, "status events a stream received meanwhile, fewest", Math.min(...seen), "");
  report(BENCH, "status events a stream received meanwhile, most", Math.max(...seen), "");
  for (const stream of streams) stream.close();
  await Promise.all(streams.map((stream) => stream.ended));
  await gateway.stop();

  // The default limit: what one user trying the same gets.
  const limited = await startService("gateway", env);
  const tries = await openStreams(limited.url, owner, followedJob.id, STREAMS);
  const answered = (status: number) => tries.filter((stream) => stream.status === status).length;
  report(BENCH, `of ${STREAMS} tries at the default limit: 200`, answered(200), "");
  report(BENCH, `of ${STREAMS} tries at the default limit: 429`, answered(429), "");
  await measure(`default limit, after ${STREAMS} tries on a changing job`, limited, limited.url, other);
  for (const stream of tries) stream.close();
  reportLoad(BENCH, "end");
} finally {
  clearInterval(changes);
  await direct.close();
  await stop();
}
