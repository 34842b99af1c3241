// Faults: MongoDB away for a few seconds (longer than the services' 5 s server
// selection), with an upload streaming into GridFS and a conversion running when it
// goes. A TCP proxy between the services and MongoDB (the stand-in in a process of its
// own, or MONGODB_URL's server) is cut and restored. While it is away uploads get 503
// and readiness is false; after, work resumes and nothing is half-written or orphaned:
// every GridFS file belongs to a job, every job's files exist, every accepted job ends done.
import { beforeAll, describe, expect, test } from "bun:test";
import { type GatewayClient, type JobView, statesOf } from "../support/client.ts";
import { bytesOf, conversionUnderWay, emailsByKey, eventually, noisyVideo, settledStores, trickle } from "./support.ts";
import { type FaultSystem, faultSetup } from "./system.ts";

const CUT_MS = 8000; // past the services' serverSelectionTimeoutMS (5 s): requests during the cut fail rather than wait it out

let system: FaultSystem;
let video: Uint8Array;
let bigVideo: Uint8Array;
let http: GatewayClient;

beforeAll(async () => {
  const big = noisyVideo(3);
  big.catch(() => {}); // awaited below, once the system is up
  // MongoDB (the stand-in in a process of its own) is behind a proxy.
  ({ system, video, http } = await faultSetup({ videoSeconds: 10, pace: 5 }));
  bigVideo = await bytesOf(await big);
}, 90_000);

async function expectProblem(answer: Response, status: number) {
  expect({ status: answer.status, type: answer.headers.get("content-type") }).toEqual({
    status,
    type: "application/problem+json",
  });
  expect(((await answer.json()) as { status: number }).status).toBe(status);
}

describe("MongoDB away for a few seconds", () => {
  test("uploads get 503 and readiness is false while it is away; after, every accepted job is done and nothing is orphaned", async () => {
    const user = await http.newUser("mongo");
    const accepted: JobView[] = [];
    for (let i = 0; i < 2; i++) accepted.push(await http.upload(user, video, `before-${i}.mp4`));
    await conversionUnderWay(http, user, accepted[0]!.id);
    const following = http.follow(user, accepted[1]!.id); // live progress of the second job, open across the cut

    // A big upload trickles in; the cut comes when part of it is in GridFS and the rest is on its way.
    let cutNow!: () => void;
    const midUpload = new Promise<void>((resolve) => (cutNow = resolve));
    const streaming = http.call("/jobs?filename=streaming.mp4", {
      method: "POST",
      headers: { ...user.headers, "content-type": "video/mp4" },
      body: trickle(bigVideo, 64 * 1024, 20, (sent) => sent >= bigVideo.length / 2 && cutNow()),
      duplex: "half",
    } as RequestInit);
    await midUpload;
    const cutAt = Date.now();
    await system.proxies.mongodb!.cut();

    // While it is away: not ready (each service), uploads and reads answer 503 problem+json.
    const [gatewayReady, converterReady, notifierReady, upload, read] = await Promise.all([
      http.call("/health/ready"),
      fetch(`${system.service("converter").url}/health/ready`),
      fetch(`${system.service("notifier").url}/health/ready`),
      http.postVideo(user, video, "during.mp4"),
      http.call(`/jobs/${accepted[1]!.id}`, { headers: user.headers }),
    ]);
    for (const ready of [gatewayReady, converterReady, notifierReady]) {
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as { checks: Record<string, string> }).checks.mongodb).not.toBe("up");
    }
    await expectProblem(upload, 503);
    expect(upload.headers.get("retry-after")).toBeTruthy();
    await expectProblem(read, 503);
    // (Those answers came while it was still away: the proxy is restored only below.)

    await Bun.sleep(Math.max(0, CUT_MS - (Date.now() - cutAt)));
    await system.proxies.mongodb!.restore();

    // The upload cut in the middle either failed cleanly or was held and finished.
    // The live stream was not cut mid-response: it ended cleanly (the client reopens it) or saw the job through.
    const followed = await following;
    expect(followed.error).toBeUndefined();
    expect(statesOf(followed.events).length).toBeGreaterThan(0);

    const streamed = await streaming;
    expect([202, 503]).toContain(streamed.status);
    if (streamed.status === 202) accepted.push((await streamed.json()) as JobView);

    await eventually(
      "the gateway ready again",
      async () => (await http.call("/health/ready")).status === 200,
      20_000,
      200,
    );
    accepted.push(await http.upload(user, video, "after.mp4"));

    for (const job of accepted)
      expect(await http.finished(user, job.id, 60_000)).toMatchObject({ id: job.id, status: "done" });
    const keys = accepted.map((job) => `job-${job.id}-done`);
    await eventually("an email per job", () => keys.every((key) => emailsByKey(system).has(key)), 20_000);

    // Work is settled; give a deferred clean-up its time, then nothing may be half-written or orphaned.
    const stores = await settledStores(system);
    expect(stores.problems).toEqual([]);
    const mine = stores.jobs.filter((job) => job.email === user.email);
    expect(mine.map((job) => job.id).sort()).toEqual(accepted.map((job) => job.id).sort()); // a 503 kept no job
    for (const job of accepted)
      expect({ job: job.id, mp3s: stores.mp3sPerJob.get(job.id) }).toEqual({ job: job.id, mp3s: 1 });
    for (const key of keys) expect({ key, sent: emailsByKey(system).get(key) }).toEqual({ key, sent: 1 });
  }, 150_000);
});
