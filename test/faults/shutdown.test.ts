// Faults: SIGTERM to every service at once, under load (uploads, polling and live
// progress streams in flight), as a rolling deploy or a node drain does. No request
// is cut without an answer: each one either completes with a proper status or fails
// to connect (the listener is gone); none is reset mid-response, none hangs. Every
// service exits by itself within its grace period, and no job is lost: after the
// services are started again, every job that got a 202 ends done, with one email.
import { beforeAll, describe, expect, test } from "bun:test";
import type { GatewayClient, User } from "../support/client.ts";
import type { LogEntry } from "../support/system.ts";
import { emailsByKey, eventually, trickle } from "./support.ts";
import { type FaultSystem, faultSetup } from "./system.ts";

const WORKERS = 8; // concurrent clients uploading and polling
const FOLLOWERS = 3; // clients following a job's live progress (SSE)
const HUNG_MS = 20_000; // a request without an answer by then is hung

let system: FaultSystem;
let video: Uint8Array;
let http: GatewayClient;

beforeAll(async () => {
  // A 10 s clip paced at 10x converts in about 1 s: some are mid-conversion at the SIGTERM.
  ({ system, video, http } = await faultSetup({ videoSeconds: 10, pace: 10, requestTimeoutMs: HUNG_MS }));
}, 90_000);

interface Outcome {
  what: string;
  status?: number;
  contentType?: string | null;
  /** The request failed: `refused` (could not connect) is fine, anything else is a cut or hung request. */
  error?: string;
  refused?: boolean;
}

/** Connection refused, as Bun's fetch reports it: the request never reached a server. */
function isRefused(error: unknown): boolean {
  const { code, message } = error as { code?: string; message?: string };
  return code === "ConnectionRefused" || code === "ECONNREFUSED" || /Unable to connect/i.test(message ?? "");
}

/** One request, its whole body read; never throws. */
async function attempt(what: string, path: string, init: RequestInit = {}): Promise<Outcome & { body?: string }> {
  try {
    const answer = await fetch(`${system.gatewayUrl}${path}`, { ...init, signal: AbortSignal.timeout(HUNG_MS) });
    const body = await answer.text(); // a reset mid-body throws here
    return { what, status: answer.status, contentType: answer.headers.get("content-type"), body };
  } catch (error) {
    const { name, code, message } = error as { name?: string; code?: string; message?: string };
    return { what, error: `${name}${code ? ` ${code}` : ""}: ${message}`, refused: isRefused(error) };
  }
}

/** Follows a job's events until the stream ends: by the server, cleanly, or with an error. */
async function follow(user: User, id: string): Promise<Outcome> {
  const stream = await http.follow(user, id, HUNG_MS);
  if (stream.error === undefined) return { what: "events", status: stream.status, contentType: stream.contentType };
  const { name, code, message } = stream.error as { name?: string; code?: string; message?: string };
  return { what: "events", error: `${name}${code ? ` ${code}` : ""}: ${message}`, refused: isRefused(stream.error) };
}

/** A proper answer: a status the API documents, errors as problem+json; never a 500. */
function proper(outcome: Outcome): boolean {
  if (outcome.status === undefined) return false;
  if (outcome.status >= 500 && outcome.status !== 503) return false;
  if (outcome.status >= 400) return outcome.contentType?.startsWith("application/problem+json") ?? false;
  return true;
}

describe("SIGTERM to every service under load", () => {
  test("no request is cut or hung, every service exits by itself, and every accepted job ends done after a restart", async () => {
    const users = await Promise.all(Array.from({ length: 4 }, () => http.newUser("sigterm")));
    const outcomes: Outcome[] = [];
    const accepted: { user: User; id: string }[] = [];
    let loading = true;

    // A user uploads a clip, polls it until it is done, and starts over.
    const worker = async (user: User) => {
      while (loading) {
        const form = new FormData();
        form.append("file", new Blob([video as Uint8Array<ArrayBuffer>], { type: "video/mp4" }), "load.mp4");
        const upload = await attempt("upload", "/jobs", { method: "POST", headers: user.headers, body: form });
        outcomes.push(upload);
        if (upload.status !== 202) {
          await Bun.sleep(100); // refused or 503: do not spin
          continue;
        }
        const id = (JSON.parse(upload.body!) as { id: string }).id;
        accepted.push({ user, id });
        while (loading) {
          await Bun.sleep(150);
          const poll = await attempt("poll", `/jobs/${id}`, { headers: user.headers });
          outcomes.push(poll);
          if (poll.status === 200 && /"status":"(done|failed)"/.test(poll.body!)) break;
        }
      }
    };
    /** An upload whose body takes about a second to arrive: in flight when the SIGTERM comes. */
    let slowPiecesSent = 0;
    const slowUpload = async (user: User) => {
      const outcome = await attempt("slow upload", "/jobs?filename=slow.mp4", {
        method: "POST",
        headers: { ...user.headers, "content-type": "video/mp4" },
        body: trickle(video, Math.ceil(video.length / 10), 100, () => slowPiecesSent++),
        duplex: "half",
      } as RequestInit);
      if (outcome.status === 202) accepted.push({ user, id: (JSON.parse(outcome.body!) as { id: string }).id });
      return outcome;
    };
    const followers = async (user: User) => {
      // Live progress of jobs under way when the SIGTERM comes (the paced conversions keep some running).
      for (let i = 0; i < FOLLOWERS; i++) {
        const job = await http.upload(user, video, `followed-${i}.mp4`);
        accepted.push({ user, id: job.id });
      }
      const mine = accepted.filter((job) => job.user === user).slice(-FOLLOWERS);
      return Promise.all(mine.map((job) => follow(user, job.id)));
    };

    const startedAt = Date.now();
    const load = Promise.all(
      users.map((user) => Promise.all(Array.from({ length: WORKERS / users.length }, () => worker(user)))),
    );
    const following = followers(users[0]!);
    // The SIGTERM comes under load: requests answered, the followed jobs accepted, a conversion running.
    const converting = (entry: LogEntry) =>
      entry.event === "job.converting" && Date.parse(String(entry.time)) >= startedAt;
    await Promise.any(
      system.services
        .filter((service) => service.name === "converter")
        .map((service) => system.waitForLog(service, converting, 20_000)),
    );
    await eventually(
      "load on the gateway",
      () => outcomes.length > 2 * WORKERS && accepted.length >= WORKERS + FOLLOWERS,
      20_000,
      50,
    );
    const slow = Promise.all(users.slice(0, 2).map(slowUpload));
    await eventually("both slow uploads under way", () => slowPiecesSent >= 4, 10_000, 10); // a second piece each, or more
    const before = outcomes.length;

    // SIGTERM to all at once; each must exit by itself (system.kill SIGKILLs and throws after the timeout).
    const exits = await Promise.all(system.services.map((service) => system.kill(service, "SIGTERM", 15_000)));
    expect(exits).toEqual(system.services.map(() => 0));
    // The load goes on against the stopped gateway until a connection is refused.
    await eventually("a refused connection", () => outcomes.some((outcome) => outcome.refused), 10_000, 20);
    loading = false;
    await load;
    outcomes.push(...(await following));
    const slowOutcomes = await slow;
    outcomes.push(...slowOutcomes);

    expect(before).toBeGreaterThan(WORKERS); // there was load when the SIGTERM came
    const broken = outcomes.filter((outcome) => (outcome.error ? !outcome.refused : !proper(outcome)));
    expect(broken).toEqual([]);
    expect(outcomes.filter((outcome) => outcome.refused).length).toBeGreaterThan(0); // the load did outlive the gateway
    // The uploads whose bodies were still arriving at the SIGTERM were answered, not dropped.
    expect(slowOutcomes.map((outcome) => outcome.status)).toEqual([202, 202]);

    // Start again: nothing accepted is lost.
    await system.start("auth");
    await system.start("gateway");
    await Promise.all([system.start("converter", 0), system.start("converter", 1), system.start("notifier")]);
    for (const { user, id } of accepted)
      expect(await http.finished(user, id, 60_000)).toMatchObject({ id, status: "done" });
    await eventually(
      "an email per job",
      () => accepted.every(({ id }) => emailsByKey(system).has(`job-${id}-done`)),
      30_000,
    );
    expect(system.resend!.delivered("job-")).toBe(accepted.length);
  }, 150_000);
});
