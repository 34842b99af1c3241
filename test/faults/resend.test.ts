// Faults: Resend answers 500 to everything for a while. The notifier retries with
// backoff (MAX_ATTEMPTS, RETRY_BASE_MS below, chosen so the retry budget outlasts the
// outage); once Resend recovers every email arrives, none twice: one accepted send
// per idempotency key, and nothing dead-lettered.
import { beforeAll, describe, expect, test } from "bun:test";
import type { GatewayClient, JobView } from "../support/client.ts";
import { parseLine } from "../support/service-process.ts";
import { emailsSettled, eventually } from "./support.ts";
import { type FaultSystem, faultSetup, NOTIFIER_RETRIES } from "./system.ts";

const MAX_ATTEMPTS = NOTIFIER_RETRIES.maxAttempts;
const RETRY_BASE_MS = NOTIFIER_RETRIES.retryBaseMs; // waits 250, 500, 1000, 2000, 4000 ms between the 6 attempts
const OUTAGE_MS = 4000;
/** How long after its first try a message can still be sent: the sum of the waits between attempts. */
const RETRY_BUDGET_MS = Array.from({ length: MAX_ATTEMPTS - 1 }, (_, i) => RETRY_BASE_MS * 2 ** i).reduce(
  (a, b) => a + b,
  0,
);

let system: FaultSystem;
let video: Uint8Array;
let http: GatewayClient;

beforeAll(async () => {
  // The shared system's notifier tries MAX_ATTEMPTS times, RETRY_BASE_MS apart and doubling.
  ({ system, video, http } = await faultSetup({ videoSeconds: 2 }));
}, 90_000);

describe("Resend failing for a while", () => {
  test("the chosen retry budget outlasts the outage, with room to spare", () => {
    expect(RETRY_BUDGET_MS).toBe(7750);
    expect(RETRY_BUDGET_MS).toBeGreaterThan(OUTAGE_MS * 1.5);
  });

  test("emails arrive once it recovers, each exactly once", async () => {
    const resend = system.resend!;
    const notifier = system.service("notifier");
    const linesBefore = notifier.logs.length;
    const user = await http.newUser("resend");
    resend.failAlways(500);
    const failingFrom = Date.now();
    const jobs: JobView[] = [];
    for (let i = 0; i < 3; i++) jobs.push(await http.upload(user, video, `mail-${i}.mp4`));
    for (const job of jobs) expect(await http.finished(user, job.id, 30_000)).toMatchObject({ status: "done" });
    const keys = jobs.map((job) => `job-${job.id}-done`);
    const tries = (key: string, from = 0) =>
      resend.received.slice(from).filter((email) => email.idempotencyKey === key).length;
    // Each email was tried, refused, and tried again while Resend was failing.
    await eventually("a retry of every email during the outage", () => keys.every((key) => tries(key) >= 2), OUTAGE_MS);
    await Bun.sleep(Math.max(0, OUTAGE_MS - (Date.now() - failingFrom)));
    expect(resend.delivered("job-")).toBe(0);

    const recoveredAt = resend.received.length; // every request from here on is answered 200
    resend.failAlways(undefined);
    await eventually(
      "every email delivered",
      () => keys.every((key) => tries(key, recoveredAt) >= 1),
      RETRY_BUDGET_MS + 5000,
    );
    // Every email is recorded as sent: a duplicate would have been sent by now.
    await emailsSettled(
      system,
      jobs.map((job) => job.id),
    );
    for (const key of keys) {
      expect({ key, sentAfterRecovery: tries(key, recoveredAt) }).toEqual({ key, sentAfterRecovery: 1 });
      expect(tries(key)).toBeLessThanOrEqual(MAX_ATTEMPTS);
    }
    expect(resend.delivered("job-")).toBe(keys.length);
    const sent = resend.received.slice(recoveredAt);
    expect(sent.map((email) => email.subject)).toEqual(jobs.map(() => "Your MP3 is ready"));
    const named = sent.map((email) => /File: (mail-\d+\.mp3)/.exec(email.text)?.[1]).sort();
    expect(named).toEqual(jobs.map((_, i) => `mail-${i}.mp3`).sort());
    const events = notifier.logs.slice(linesBefore).map((line) => parseLine(line).event);
    expect(events).toContain("email.retry");
    expect(events.filter((event) => String(event).endsWith("dead_lettered"))).toEqual([]);
  }, 60_000);
});
