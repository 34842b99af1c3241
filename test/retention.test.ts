// Retention and retry, in-process: the gateway (app.handle) with real auth, RabbitMQ
// (a vhost of its own) and MongoDB (MONGODB_URL or the stand-in); the converter's
// retention sweeper on the same stores, and a converter for the retried job. What a
// user sees is checked through the API; what is left in the stores, directly.
// A sweeper killed as a process: test/faults/retention.test.ts.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { ObjectId } from "mongodb";
import { retentionSweeper } from "../converter/sweeper.ts";
import type { JobView } from "../gateway.ts";
import { type Job, jobStore } from "../lib/jobs.ts";
import { createLogger } from "../lib/log.ts";
import { generateLinkSigningKey, linkSigner } from "../lib/signed-links.ts";
import { composeEmail } from "../notifier/email.ts";
import { drainQueue, waitForJob } from "./support/jobs.ts";
import { startLocalConverter } from "./support/local-converter.ts";
import { makeVideo } from "./support/media.ts";
import { type Stack, startStack } from "./support/stack.ts";

const HOUR = 3_600_000;
let stack: Stack;
let video: Uint8Array;
const tmp = mkdtempSync(join(tmpdir(), "m3dio-retention-test-"));
beforeAll(async () => {
  stack = await startStack();
  video = new Uint8Array(await Bun.file(await makeVideo({ seconds: 1 })).arrayBuffer());
});
afterAll(async () => {
  await stack?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

const jobs = () => stack.gateway.jobs;
const files = () => stack.gateway.files;
const call = (path: string, init: RequestInit = {}) => stack.call(path, init);

/** What the sweepers log, parsed, so a test can see which of them removed what. */
const entries: Record<string, unknown>[] = [];
const sweeperLog = createLogger("converter", "info", { write: (line: string) => void entries.push(JSON.parse(line)) });
const expiredLogged = (id: ObjectId) => entries.filter((e) => e.event === "job.expired" && e.jobId === `${id}`);
const sweeper = (options: Parameters<typeof retentionSweeper>[1] = {}) =>
  retentionSweeper({ jobs: jobs(), files: files(), log: sweeperLog }, options);

/** A stored file of `bytes` bytes in `bucket`, owned by `owner`. */
const store = (bucket: "videos" | "mp3s", owner: string, bytes: Uint8Array, jobId?: ObjectId) =>
  files().upload(bucket, Readable.from([Buffer.from(bytes)]), {
    owner,
    filename: bucket === "videos" ? "talk.mp4" : "talk.mp3",
    contentType: bucket === "videos" ? "video/mp4" : "audio/mpeg",
    ...(jobId ? { jobId: `${jobId}` } : {}),
  });

/** A job finished as the converter leaves it: failed with its video, or done with its MP3 (and video when `keepVideo`). */
async function finishedJob(
  userId: string,
  status: "done" | "failed",
  { keepVideo = status === "failed", email = "owner@example.com" } = {},
): Promise<Job> {
  const stored = await store("videos", userId, video);
  const job = await jobs().create({
    userId,
    email,
    videoFileId: stored.id,
    source: { kind: "upload", filename: "talk.mp4", bytes: stored.bytes, contentType: "video/mp4" },
  });
  await jobs().startConverting(job._id);
  if (status === "failed")
    return (await jobs().markFailed(job._id, "gave up after 3 attempts; please try again later"))!;
  const mp3 = await store("mp3s", userId, new Uint8Array(40_000).fill(7), job._id);
  const done = (await jobs().markDone(job._id, mp3.id, { bytes: mp3.bytes, durationSec: 1 }))!;
  if (!keepVideo) await files().remove("videos", stored.id); // as after a success, unless KEEP_VIDEOS
  return done;
}

/** As if RETENTION_HOURS had passed since the job finished. */
const expire = (id: ObjectId, agoMs = 60_000) =>
  jobs().collection.updateOne({ _id: id }, { $set: { expiresAt: new Date(Date.now() - agoMs) } });

/** Whether anything of the file is left: its record or any of its chunks. */
async function fileLeft(bucket: "videos" | "mp3s", id: ObjectId | undefined): Promise<boolean> {
  if (!id) return false;
  const db = stack.mongo.db;
  return (
    (await db.collection(`${bucket}.files`).countDocuments({ _id: id })) +
      (await db.collection(`${bucket}.chunks`).countDocuments({ files_id: id })) >
    0
  );
}

async function view(user: { headers: Record<string, string> }, id: ObjectId | string) {
  const answer = await call(`/jobs/${id}`, { headers: user.headers });
  return { status: answer.status, body: (await answer.json()) as JobView & { detail?: string } };
}

const retry = async (user: { headers: Record<string, string> }, id: ObjectId | string, app = stack.gateway.app) => {
  const answer = await stack.call(`/jobs/${id}/retry`, { method: "POST", headers: user.headers }, app);
  return { status: answer.status, body: (await answer.json()) as JobView & { detail?: string; title?: string } };
};

/** Stand-in user id for jobs only the stores see (the sweeper never asks who owns a job). */
const someone = () => `u${new ObjectId()}`;

describe("the sweeper", () => {
  test("an expired job goes with its video and MP3; a job not yet expired stays, a failed one with its video", async () => {
    const owner = someone();
    const expired = await finishedJob(owner, "done", { keepVideo: true });
    const kept = await finishedJob(owner, "done");
    const failed = await finishedJob(owner, "failed");
    // Finishing set the expiry: RETENTION_HOURS (168 by default) after the finish.
    for (const job of [expired, kept, failed])
      expect(job.expiresAt!.getTime() - job.finishedAt!.getTime()).toBe(168 * HOUR);
    await expire(expired._id);

    expect(await sweeper().sweepOnce()).toBe(1);

    expect(await jobs().get(expired._id)).toBeNull();
    expect(await fileLeft("videos", expired.videoFileId)).toBe(false);
    expect(await fileLeft("mp3s", expired.audioFileId)).toBe(false);
    expect(await jobs().get(kept._id)).toMatchObject({ status: "done" });
    expect(await fileLeft("mp3s", kept.audioFileId)).toBe(true);
    // A failed job keeps its video until it expires: a retry needs it.
    expect(await jobs().get(failed._id)).toMatchObject({ status: "failed" });
    expect(await fileLeft("videos", failed.videoFileId)).toBe(true);
    expect(expiredLogged(expired._id)).toHaveLength(1);
  });

  test("a store's RETENTION_HOURS sets when a finished job expires", async () => {
    const shortly = jobStore(stack.mongo.db, { retentionHours: 2 });
    const job = await shortly.create({
      userId: someone(),
      email: "owner@example.com",
      source: { kind: "url", url: "https://example.com/a.mp4", filename: "a.mp4", bytes: 0, contentType: "video/mp4" },
    });
    await shortly.startConverting(job._id);
    const failed = (await shortly.markFailed(job._id, "the link answered 404"))!;
    expect(failed.expiresAt!.getTime() - failed.finishedAt!.getTime()).toBe(2 * HOUR);
  });

  test("a sweep cut short (claimed, its video half removed, its process gone) is finished by the next sweeper once the claim's lease is over", async () => {
    const job = await finishedJob(someone(), "done", { keepVideo: true });
    await expire(job._id, HOUR);
    // The sweeper that died: it claimed the job ten minutes ago, then GridFS removed the
    // video's file record but not yet its chunks (two commands), and the process was gone.
    const dead = await jobs().claimExpired(new Date(Date.now() - 10 * 60_000), 5 * 60_000);
    expect(dead?._id).toEqual(job._id);
    await stack.mongo.db.collection("videos.files").deleteOne({ _id: job.videoFileId });
    expect(await fileLeft("videos", job.videoFileId)).toBe(true); // its chunks

    // While the claim's lease holds, another sweeper leaves the job to its claimant.
    expect(await sweeper({ leaseMs: HOUR }).sweepOnce()).toBe(0);
    expect(await jobs().get(job._id)).not.toBeNull();

    // Past the lease (5 minutes by default), the next sweeper takes it over and finishes it.
    expect(await sweeper().sweepOnce()).toBe(1);
    expect(await jobs().get(job._id)).toBeNull();
    expect(await fileLeft("videos", job.videoFileId)).toBe(false);
    expect(await fileLeft("mp3s", job.audioFileId)).toBe(false);
    expect(expiredLogged(job._id)).toEqual([expect.objectContaining({ tookOver: expect.any(String) })]);
  });

  test("two sweepers at once remove every expired job once, and neither fails", async () => {
    const owner = someone();
    const expired = await Promise.all(
      Array.from({ length: 12 }, (_, i) => finishedJob(owner, i % 3 ? "done" : "failed", { keepVideo: i % 2 === 0 })),
    );
    for (const job of expired) await expire(job._id);

    const [first, second] = await Promise.all([sweeper().sweepOnce(), sweeper().sweepOnce()]);

    expect(first + second).toBe(12);
    for (const job of expired) {
      expect(await jobs().get(job._id)).toBeNull();
      expect(await fileLeft("videos", job.videoFileId)).toBe(false);
      expect(await fileLeft("mp3s", job.audioFileId)).toBe(false);
      expect(expiredLogged(job._id)).toHaveLength(1); // removed by one of them, not both
    }
  });

  test("an expired job is gone from the API too, and its owner's other jobs are not", async () => {
    const user = await stack.newUser("sweep");
    const { id } = (await (await call("/jobs", uploadInit(user.headers))).json()) as JobView;
    await drainQueue(stack.vhost.url, "video", 1);
    const userId = (await jobs().get(new ObjectId(id)))!.userId;
    const other = await finishedJob(userId, "failed");
    await jobs().startConverting(new ObjectId(id));
    await jobs().markFailed(new ObjectId(id), "the video has no audio track");
    await expire(new ObjectId(id));
    await sweeper().sweepOnce();
    expect((await view(user, id)).status).toBe(404);
    expect((await view(user, other._id)).body).toMatchObject({ status: "failed" });
  });
});

function uploadInit(headers: Record<string, string>): RequestInit {
  const form = new FormData();
  form.append("file", new Blob([video as BlobPart], { type: "video/mp4" }), "talk.mp4");
  return { method: "POST", headers, body: form };
}

/** The user's uploaded job, failed as a converter that gave up leaves it (its message taken off the queue). */
async function failedUpload(user: { headers: Record<string, string> }) {
  const answer = await call("/jobs", uploadInit(user.headers));
  expect(answer.status).toBe(202);
  const { id } = (await answer.json()) as JobView;
  await drainQueue(stack.vhost.url, "video", 1);
  const jobId = new ObjectId(id);
  await jobs().startConverting(jobId);
  await jobs().markFailed(jobId, "gave up after 3 attempts; please try again later");
  return jobId;
}

describe("POST /jobs/:id/retry", () => {
  test("a failed job runs again: 202 queued, converted by a converter, and the view says until when it is kept", async () => {
    const user = await stack.newUser("retry");
    const id = await failedUpload(user);
    const failed = (await view(user, id)).body;
    expect(failed).toMatchObject({ status: "failed", links: { retry: `/jobs/${id}/retry` } });
    const before = (await jobs().get(id))!;
    expect(failed.expiresAt).toBe(before.expiresAt!.toISOString());

    const converter = await startLocalConverter(
      { mongo: stack.mongo, mongoUrl: stack.mongoUrl, amqpUrl: stack.vhost.url, tmpDir: tmp, log: stack.log },
      { RETENTION_HOURS: "2" },
    );
    try {
      const answer = await retry(user, id);
      expect(answer.status).toBe(202);
      expect(answer.body).toMatchObject({ id: `${id}`, status: "queued", progress: 0 });
      expect(answer.body.error).toBeUndefined();
      expect(answer.body.expiresAt).toBeUndefined();
      const done = await waitForJob(jobs(), id);
      expect(done).toMatchObject({ status: "done", attempts: 1, retries: 1, videoFileId: before.videoFileId });
      // The converter's RETENTION_HOURS: 2 hours after this finish.
      expect(done.expiresAt!.getTime() - done.finishedAt!.getTime()).toBe(2 * HOUR);
      const shown = (await view(user, id)).body;
      expect(shown).toMatchObject({ status: "done", expiresAt: done.expiresAt!.toISOString() });
      expect(shown.links.retry).toBeUndefined();
      expect((await call(`/jobs/${id}/audio`, { headers: user.headers })).status).toBe(200);
      // The notifier hears of the new outcome.
      expect(await drainQueue(stack.vhost.url, "mp3", 1)).toContainEqual({ jobId: `${id}`, status: "done" });
    } finally {
      await converter.stop();
    }
    // Done now: nothing to retry.
    const again = await retry(user, id);
    expect(again.status).toBe(409);
    expect(again.body.detail).toBe("only a failed job can be retried; this one is done");
  });

  test("409 for a job that has not failed, 404 for someone else's, 410 once the video is gone or the job expired", async () => {
    const user = await stack.newUser("retry");
    const stranger = await stack.newUser("retry");
    const { id: queuedId } = (await (await call("/jobs", uploadInit(user.headers))).json()) as JobView;
    await drainQueue(stack.vhost.url, "video", 1);
    expect(await retry(user, queuedId)).toMatchObject({
      status: 409,
      body: { detail: "only a failed job can be retried; this one is queued" },
    });

    const failed = await failedUpload(user);
    expect(await retry(stranger, failed)).toMatchObject({ status: 404, body: { detail: "no such job" } });
    expect(await retry(user, "not-a-job-id")).toMatchObject({ status: 404 });

    const expired = await failedUpload(user);
    await expire(expired);
    expect(await retry(user, expired)).toMatchObject({
      status: 410,
      body: { title: "Gone", detail: "the job has expired and its video is no longer kept; upload the video again" },
    });

    const videoGone = await failedUpload(user);
    await files().remove("videos", (await jobs().get(videoGone))!.videoFileId!);
    expect(await retry(user, videoGone)).toMatchObject({
      status: 410,
      body: { detail: "the job's video is no longer kept; upload the video again" },
    });
    // None of them moved, and nothing was queued.
    for (const id of [failed, expired, videoGone]) expect((await jobs().get(id))!.status).toBe("failed");
    expect(await drainQueue(stack.vhost.url, "video")).toEqual([]);
  });

  test("a retry the broker does not confirm is 503, and the job is failed again as it was", async () => {
    const user = await stack.newUser("retry");
    const id = await failedUpload(user);
    await jobs().markNotified(id);
    const before = (await jobs().get(id))!;
    const refusing = stack.gatewayWith(
      {},
      { queue: { publish: () => Promise.reject(new Error("no confirm")), ping: async () => true as const } },
    );
    const answer = await retry(user, id, refusing.app);
    expect(answer.status).toBe(503);
    expect(answer.body.detail).toBe("the job could not be queued right now; it is still failed, please try again");
    const after = (await jobs().get(id))!;
    const { updatedAt: _a, retries: _r, ...was } = before;
    expect(after).toMatchObject(was);
    expect((await view(user, id)).body).toMatchObject({ status: "failed", error: before.error });
  });
});

describe("the email", () => {
  test("says until when the MP3, or a failed job's video, is kept", async () => {
    const config = { MAIL_FROM: "m3dio <mp3@example.com>", PUBLIC_URL: "https://m3dio.example" };
    const links = linkSigner(generateLinkSigningKey());
    const done = await finishedJob(someone(), "done");
    const failed = await finishedJob(someone(), "failed");
    const doneEmail = composeEmail(done, config, links);
    expect(doneEmail.text).toContain(`The MP3 is kept until ${done.expiresAt!.toUTCString()}.`);
    expect(doneEmail.html).toContain(`The MP3 is kept until ${done.expiresAt!.toUTCString()}.`);
    expect(composeEmail(failed, config, links).text).toContain(
      `The video is kept until ${failed.expiresAt!.toUTCString()}: until then you can retry the conversion on the page.`,
    );
    const undated = composeEmail({ ...done, expiresAt: undefined }, config, links);
    expect(undated.text).not.toContain("kept until");
  });
});
