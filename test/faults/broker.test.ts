// Faults: the broker goes away while jobs wait in the queue and one converts, then
// comes back. The shared RabbitMQ is never restarted: a TCP proxy between the
// services and the broker is cut (every connection dropped, new ones refused) and
// restored, and the broker itself force-closes the vhost's connections, as a
// restart does. Every service reconnects by itself, every accepted job ends done,
// none twice: one MP3 and one email each.
import { beforeAll, describe, expect, test } from "bun:test";
import type { GatewayClient, JobView, User } from "../support/client.ts";
import { isRunning } from "../support/service-process.ts";
import type { LogEntry } from "../support/system.ts";
import { conversionUnderWay, emailsByKey, emailsSettled, eventually, jobEmailsTo, settledStores } from "./support.ts";
import { type FaultSystem, faultSetup } from "./system.ts";

const CUT_MS = 4000;

let system: FaultSystem;
let video: Uint8Array;
let http: GatewayClient;

beforeAll(async () => {
  // A 10 s clip paced at 5x converts in about 2 s: jobs wait in the queue.
  ({ system, video, http } = await faultSetup({ videoSeconds: 10, pace: 5 }));
  // One converter, as these faults were written for; the next file gets the second one back.
  await system.kill(system.service("converter", 1));
}, 90_000);

const reconnected = (from: number) => (entry: LogEntry) =>
  entry.event === "broker.reconnected" && Date.parse(String(entry.time)) >= from;

/** Every service that talks to the broker logs that it reconnected after `from` (ms since epoch). */
async function allReconnected(from: number) {
  await Promise.all(
    system.services
      .filter((service) => service.name !== "auth" && isRunning(service))
      .map((service) => system.waitForLog(service, reconnected(from), 30_000)),
  );
}

/** Every accepted job ends done with exactly one MP3 and one delivered email; nothing else is in the stores. */
async function expectAllDoneOnce(user: User, accepted: JobView[]) {
  for (const job of accepted)
    expect(await http.finished(user, job.id, 60_000)).toMatchObject({ id: job.id, status: "done" });
  const keys = accepted.map((job) => `job-${job.id}-done`).sort();
  await eventually("an email per job", () => keys.every((key) => emailsByKey(system).has(key)), 20_000);
  await emailsSettled(
    system,
    accepted.map((job) => job.id),
  ); // a duplicate would have been sent by now
  const mine = jobEmailsTo(system, user.email).map((email) => email.idempotencyKey);
  expect([...new Set(mine)].sort()).toEqual(keys);
  for (const key of keys) expect({ key, sent: emailsByKey(system).get(key) }).toEqual({ key, sent: 1 });
  const stores = await settledStores(system);
  expect(stores.problems).toEqual([]);
  for (const job of accepted)
    expect({ job: job.id, mp3s: stores.mp3sPerJob.get(job.id) }).toEqual({ job: job.id, mp3s: 1 });
  return stores;
}

describe("RabbitMQ away for a few seconds", () => {
  test("cut while jobs are queued and one converts: services reconnect, every job finishes once", async () => {
    const user = await http.newUser("broker");
    const accepted: JobView[] = [];
    for (let i = 0; i < 4; i++) accepted.push(await http.upload(user, video, `queued-${i}.mp4`));
    await conversionUnderWay(http, user, accepted[0]!.id);

    const cutAt = Date.now();
    await system.proxies.rabbitmq!.cut();
    // While it is away: the gateway is not ready, and an upload is either held until the
    // broker is back (202) or refused with 503, keeping nothing.
    // (The gateway learns of the cut from its socket, a moment after the proxy made it.)
    const ready = await eventually(
      "the gateway not ready",
      async () => {
        const answer = await http.call("/health/ready");
        return answer.status === 503 && ((await answer.json()) as { checks: Record<string, string> });
      },
      3000,
      50,
    );
    expect(ready.checks.rabbitmq).not.toBe("up");
    const during = http.postVideo(user, video, "during.mp4");
    await Bun.sleep(CUT_MS);
    await system.proxies.rabbitmq!.restore();

    const answer = await during;
    expect([202, 503]).toContain(answer.status);
    if (answer.status === 202) accepted.push((await answer.json()) as JobView);
    else expect(answer.headers.get("content-type")).toStartWith("application/problem+json");
    await allReconnected(cutAt);
    await eventually("the gateway ready again", async () => (await http.call("/health/ready")).status === 200, 15_000);
    accepted.push(await http.upload(user, video, "after.mp4")); // and new work flows

    const stores = await expectAllDoneOnce(user, accepted);
    // The user has nothing but the accepted jobs: a refused upload kept no job.
    const mine = stores.jobs.filter((job) => job.email === user.email);
    expect(mine.map((job) => job.id).sort()).toEqual(accepted.map((job) => job.id).sort());
  }, 120_000);

  test("the broker force-closes every connection (as on a restart): the same", async () => {
    const user = await http.newUser("broker");
    const accepted: JobView[] = [];
    for (let i = 0; i < 3; i++) accepted.push(await http.upload(user, video, `forced-${i}.mp4`));
    await conversionUnderWay(http, user, accepted[0]!.id);
    const closedAt = Date.now();
    // The connections reach the broker through the proxy: the broker sees (and closes) each.
    expect(await system.vhost.closeConnections()).toBeGreaterThanOrEqual(3);
    await allReconnected(closedAt);
    accepted.push(await http.upload(user, video, "after-forced.mp4"));
    await expectAllDoneOnce(user, accepted);
  }, 120_000);
});
