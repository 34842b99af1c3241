// Faults: a converter killed (SIGKILL) in the middle of a retention sweep. It had claimed
// an expired job and GridFS had removed the MP3's file record but not yet its chunks (two
// commands), then the process was gone. When a converter starts again its first sweep
// takes the stale claim over and finishes: the job is gone for its owner, and the stores
// hold nothing half-deleted. (Claims, leases and two sweepers at once: test/retention.test.ts.)
import { beforeAll, describe, expect, test } from "bun:test";
import { MongoClient, ObjectId } from "mongodb";
import type { GatewayClient } from "../support/client.ts";
import { inspectStores, settledStores } from "./support.ts";
import { type FaultSystem, faultSetup } from "./system.ts";

let system: FaultSystem;
let video: Uint8Array;
let http: GatewayClient;

beforeAll(async () => {
  ({ system, video, http } = await faultSetup({ videoSeconds: 1 }));
}, 90_000);

describe("a converter killed mid-sweep", () => {
  test("the next converter to start finishes the sweep: the job is gone and nothing half-deleted is left", async () => {
    const user = await http.newUser("retention");
    const { id } = await http.upload(user, video, "expiring.mp4");
    const done = await http.finished(user, id);
    expect(done.status).toBe("done");
    expect(Date.parse(done.expiresAt!)).toBeGreaterThan(Date.now()); // kept for RETENTION_HOURS

    // What the killed sweeper left: its claim, ten minutes old, on a job expired an hour ago,
    // and the MP3's chunks without their file record.
    const mongo = new MongoClient(system.mongoUrl, { serverSelectionTimeoutMS: 5000 });
    try {
      const db = mongo.db();
      const jobId = new ObjectId(id);
      const job = await db.collection("jobs").findOne({ _id: jobId });
      await db
        .collection("jobs")
        .updateOne(
          { _id: jobId },
          { $set: { expiresAt: new Date(Date.now() - 3_600_000), sweepingAt: new Date(Date.now() - 600_000) } },
        );
      await db.collection("mp3s.files").deleteOne({ _id: job!.audioFileId });
      expect((await inspectStores(system)).problems).toContainEqual(expect.stringMatching(/mp3s chunks of file/));

      const victim = system.service("converter", 0);
      expect(await system.kill(victim, "SIGKILL")).toBe(128 + 9);
      await system.start("converter", 0);
      const expired = await system.waitForLog(
        system.service("converter", 0),
        (entry) => entry.event === "job.expired" && entry.jobId === id,
        20_000,
      );
      expect(expired.tookOver).toBeDefined();
    } finally {
      await mongo.close();
    }
    expect((await http.call(`/jobs/${id}`, { headers: user.headers })).status).toBe(404);
    const stores = await settledStores(system);
    expect(stores.problems).toEqual([]);
    expect(stores.jobs.map((job) => job.id)).not.toContain(id);
  });
});
