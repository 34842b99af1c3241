// Faults: a converter killed outright (SIGKILL, as the OOM killer or a lost node
// would) in the middle of a conversion. The broker hands the job to the other
// converter; the user gets exactly one MP3 and exactly one email, and the killed
// worker leaves nothing behind in the stores once it is back.
import { beforeAll, describe, expect, test } from "bun:test";
import { GridFSBucket, MongoClient, ObjectId } from "mongodb";
import type { GatewayClient } from "../support/client.ts";
import { emailsByKey, emailsSettled, eventually, jobEmailsTo, settledStores } from "./support.ts";
import { type FaultSystem, faultSetup } from "./system.ts";

const VIDEO_SECONDS = 20;
const PACE = 5; // ffmpeg reads at 5× real time: about 4 s per conversion, long enough to be killed in the middle

let system: FaultSystem;
let video: Uint8Array;
let http: GatewayClient;

beforeAll(async () => {
  // The shared system runs two converters: one is killed, the other takes the job over.
  ({ system, video, http } = await faultSetup({ videoSeconds: VIDEO_SECONDS, pace: PACE }));
}, 90_000);

/** The converter process whose log says it started converting `jobId` (attempt `attempt`). */
async function converterOf(jobId: string, attempt = 1) {
  const match = (entry: Record<string, unknown>) =>
    entry.event === "job.converting" && entry.jobId === jobId && entry.attempt === attempt;
  return Promise.any(
    system.services
      .filter((service) => service.name === "converter")
      .map((service) => system.waitForLog(service, match, 20_000).then(() => service)),
  );
}

describe("a converter killed with SIGKILL mid-conversion", () => {
  test("the other converter finishes the job: one MP3, one email, nothing left behind", async () => {
    const user = await http.newUser("crash");
    const job = await http.upload(user, video, "crash.mp4");
    const victim = await converterOf(job.id);
    // In the middle: ffmpeg has started reporting progress, and is far from done.
    const running = await eventually(
      "the conversion to be under way",
      async () => {
        const view = await http.job(user, job.id);
        return view.status === "converting" && view.progress > 0 && view;
      },
      20_000,
      50,
    );
    expect(running.progress).toBeLessThan(90);
    expect(await system.kill(victim, "SIGKILL")).toBe(128 + 9);

    const survivor = await converterOf(job.id, 2); // the broker's redelivery, counted as a second attempt
    expect(survivor.index).not.toBe(victim.index);
    const done = await http.finished(user, job.id, 40_000);
    expect(done).toMatchObject({ status: "done", progress: 100 });
    expect(done.audio!.durationSec).toBeCloseTo(VIDEO_SECONDS, 0);

    // The killed worker comes back and clears its temp directory (its ffmpeg may have outlived it).
    await system.start("converter", victim.index);
    await system.waitForLog(system.service("converter", victim.index), (entry) => entry.event === "workdir.removed");

    const key = `job-${job.id}-done`;
    await eventually("the email", () => system.resend!.delivered("job-") >= 1, 15_000);
    await emailsSettled(system, [job.id]); // a duplicate would have been sent by now
    expect(jobEmailsTo(system, user.email).map((email) => email.idempotencyKey)).toEqual([key]);
    expect(emailsByKey(system).get(key)).toBe(1);

    const stores = await settledStores(system);
    expect(stores.problems).toEqual([]);
    expect(stores.mp3sPerJob.get(job.id)).toBe(1);
    const audio = await http.call(`/jobs/${job.id}/audio`, { headers: user.headers });
    expect(audio.status).toBe(200);
    expect((await audio.arrayBuffer()).byteLength).toBe(done.audio!.bytes);
  }, 90_000);

  test("an MP3 stored by a worker that died before marking the job done is removed by the next attempt", async () => {
    // The state a SIGKILL between "MP3 stored" and "job marked done" leaves: the job converting,
    // a complete MP3 in GridFS for it that the job does not point to, the message unacked.
    // Converters are stopped so the test can lay that state down before one picks the job up.
    const converters = system.services.filter((service) => service.name === "converter");
    await Promise.all(converters.map((service) => system.kill(service, "SIGTERM")));
    const user = await http.newUser("crash");
    const job = await http.upload(user, video, "leftover.mp4");
    const mongo = new MongoClient(system.mongoUrl);
    try {
      const db = mongo.db();
      await db
        .collection("jobs")
        .updateOne({ _id: new ObjectId(job.id) }, { $set: { status: "converting", attempts: 1 } });
      const leftover = new GridFSBucket(db, { bucketName: "mp3s" }).openUploadStream("leftover.mp3", {
        metadata: { owner: "someone", filename: "leftover.mp3", contentType: "audio/mpeg", jobId: job.id },
      });
      await new Promise<void>((resolve, reject) =>
        leftover
          .once("finish", () => resolve())
          .once("error", reject)
          .end(Buffer.alloc(300_000, 0xff)),
      );
    } finally {
      await mongo.close();
    }
    await system.start("converter", 0);
    const done = await http.finished(user, job.id, 40_000);
    await system.start("converter", 1); // both back, as the other fault tests expect
    expect(done.status).toBe("done");
    await eventually("the email", () => emailsByKey(system).get(`job-${job.id}-done`), 15_000);
    const stores = await settledStores(system);
    expect(stores.problems).toEqual([]);
    expect(stores.mp3sPerJob.get(job.id)).toBe(1);
  }, 90_000);
});
