// Per-user quotas at the gateway (and, for links, the converter): MAX_ACTIVE_JOBS (429 with
// Retry-After), USER_STORAGE_BYTES (413 naming the quota) and GET /account/usage, in-process
// on a real stack (test/support/stack.ts) with real RabbitMQ and MongoDB (or the stand-in).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ObjectId } from "mongodb";
import type { UsageView } from "../gateway/models.ts";
import type { JobView } from "../gateway.ts";
import { QUEUES } from "../lib/queue.ts";
import { drainQueue, settle, waitForJob } from "./support/jobs.ts";
import { startLocalConverter } from "./support/local-converter.ts";
import { makeVideo } from "./support/media.ts";
import { type Stack, startStack } from "./support/stack.ts";

let stack: Stack;
let video: Uint8Array;
const tmp = mkdtempSync(join(tmpdir(), "m3dio-quotas-test-"));
/** Where an in-process converter of these tests works: the stack's stores and a temp dir. */
const converterPlace = () => ({
  mongo: stack.mongo,
  mongoUrl: stack.mongoUrl,
  amqpUrl: stack.vhost.url,
  tmpDir: tmp,
  log: stack.log,
});
beforeAll(async () => {
  stack = await startStack();
  video = await Bun.file(await makeVideo({ seconds: 1 })).bytes();
});
afterAll(async () => {
  await stack?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

type User = Awaited<ReturnType<Stack["newUser"]>>;
type App = Stack["gateway"]["app"];
interface Problem {
  status: number;
  detail: string;
  quota?: string;
  limit?: number;
  used?: number;
}

const newUser = () => stack.newUser("quota");
const call = (path: string, init: RequestInit = {}, app: App = stack.gateway.app) => stack.call(path, init, app);
const upload = (user: User, app?: App, name = "clip.mp4") => {
  const form = new FormData();
  form.append("file", new Blob([video as Uint8Array<ArrayBuffer>], { type: "video/mp4" }), name);
  return call("/jobs", { method: "POST", headers: user.headers, body: form }, app);
};
const postLink = (user: User, url: string, app?: App) =>
  call(
    "/jobs",
    { method: "POST", headers: { ...user.headers, "content-type": "application/json" }, body: JSON.stringify({ url }) },
    app,
  );
const usageOf = async (user: User, app?: App) => {
  const response = await call("/account/usage", { headers: user.headers }, app);
  expect(response.status).toBe(200);
  return (await response.json()) as UsageView;
};
const userIdOf = (user: User) => JSON.parse(atob(user.token.split(".")[1]!)).sub as string;
/** What is kept for `user`: their jobs, their videos in GridFS, and every videos chunk (of anyone). */
const keptFor = async (user: User) => {
  const userId = userIdOf(user);
  const db = stack.mongo.db;
  return {
    jobs: await db.collection("jobs").countDocuments({ userId }),
    videos: await db.collection("videos.files").countDocuments({ "metadata.owner": userId }),
    chunks: await db.collection("videos.chunks").countDocuments(),
  };
};
const chunksPerVideo = () => Math.ceil(video.length / (255 * 1024));

describe("GET /account/usage", () => {
  test("answers the limits and what is used: nothing, then an upload, its conversion and its deletion", async () => {
    const user = await newUser();
    const limits = { activeJobs: 5, storedBytes: 5 * 1024 ** 3 };
    expect(await usageOf(user)).toEqual({ activeJobs: 0, storedBytes: 0, limits });
    expect((await call("/account/usage")).status).toBe(401);

    await drainQueue(stack.vhost.url, QUEUES.video); // only this test's job for the converter below
    const uploaded = await upload(user);
    expect(uploaded.status).toBe(202);
    const { id } = (await uploaded.json()) as JobView;
    expect(await usageOf(user)).toEqual({ activeJobs: 1, storedBytes: video.length, limits });

    const converter = await startLocalConverter(converterPlace(), { LOG_LEVEL: "silent" });
    try {
      const done = await waitForJob(stack.gateway.jobs, id, ["done", "failed"], 30_000);
      expect(done.status).toBe("done");
      // The video goes once the MP3 is kept (KEEP_VIDEOS=false): then the MP3 and its cover are stored.
      const cover = await stack.mongo.db.collection("covers.files").findOne({ _id: done.coverFileId });
      expect(cover?.length).toBeGreaterThan(0);
      const kept = done.audio!.bytes + cover!.length;
      const converted = await settle(
        () => usageOf(user),
        (usage) => usage.storedBytes === kept,
      );
      expect(converted).toEqual({ activeJobs: 0, storedBytes: kept, limits });
    } finally {
      await converter.stop();
    }

    expect((await call(`/jobs/${id}`, { method: "DELETE", headers: user.headers })).status).toBe(204);
    expect(await usageOf(user)).toEqual({ activeJobs: 0, storedBytes: 0, limits });
  }, 60_000);

  test("is in the OpenAPI document with its model", async () => {
    const spec = (await (await call("/docs/json")).json()) as {
      paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, unknown> }> }>>;
      components: { schemas: Record<string, { properties: Record<string, unknown> }> };
    };
    const ok = spec.paths["/account/usage"]?.get?.responses["200"];
    expect(JSON.stringify(ok)).toContain("#/components/schemas/Usage");
    expect(Object.keys(spec.components.schemas.Usage!.properties)).toEqual(["activeJobs", "storedBytes", "limits"]);
    expect(Object.keys(spec.paths["/jobs"]!.post!.responses)).toEqual(expect.arrayContaining(["413", "429"]));
  });
});

describe("MAX_ACTIVE_JOBS", () => {
  test("one job more is 429 with Retry-After naming the limit, keeps nothing, and holds back no one else", async () => {
    const gateway = stack.gatewayWith({ MAX_ACTIVE_JOBS: "2" });
    const user = await newUser();
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const response = await upload(user, gateway.app);
      expect(response.status).toBe(202);
      ids.push(((await response.json()) as JobView).id);
    }
    const before = await keptFor(user);
    for (const refused of [
      await upload(user, gateway.app),
      await postLink(user, "https://example.com/talk.mp4", gateway.app),
    ]) {
      expect(refused.status).toBe(429);
      expect(refused.headers.get("retry-after")).toBe("30");
      expect(refused.headers.get("content-type")).toStartWith("application/problem+json");
      const problem = (await refused.json()) as Problem;
      expect(problem).toMatchObject({ status: 429, quota: "activeJobs", limit: 2 });
      expect(problem.detail).toContain("MAX_ACTIVE_JOBS");
    }
    expect(await keptFor(user)).toEqual(before);
    expect(await usageOf(user, gateway.app)).toMatchObject({ activeJobs: 2, limits: { activeJobs: 2 } });

    // Someone else is not held back,
    expect((await upload(await newUser(), gateway.app)).status).toBe(202);
    // and a finished job (or a deleted one) makes room again.
    await stack.gateway.jobs.markFailed(new ObjectId(ids[0]), "test: finished");
    expect((await upload(user, gateway.app)).status).toBe(202);
    expect((await upload(user, gateway.app)).status).toBe(429);
    expect((await call(`/jobs/${ids[1]}`, { method: "DELETE", headers: user.headers }, gateway.app)).status).toBe(204);
    expect((await postLink(user, "https://example.com/talk.mp4", gateway.app)).status).toBe(202);
  });

  test("a retried job counts like a new one: past the limit it is 429 and stays failed", async () => {
    const gateway = stack.gatewayWith({ MAX_ACTIVE_JOBS: "1" });
    const user = await newUser();
    const first = ((await (await upload(user, gateway.app)).json()) as JobView).id;
    await stack.gateway.jobs.markFailed(new ObjectId(first), "test: failed");
    const second = ((await (await upload(user, gateway.app)).json()) as JobView).id;
    const retry = () => call(`/jobs/${first}/retry`, { method: "POST", headers: user.headers }, gateway.app);

    const refused = await retry();
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe("30");
    expect((await refused.json()) as Problem).toMatchObject({ quota: "activeJobs", limit: 1 });
    const still = (await (await call(`/jobs/${first}`, { headers: user.headers }, gateway.app)).json()) as JobView;
    expect(still.status).toBe("failed");

    await stack.gateway.jobs.markFailed(new ObjectId(second), "test: failed");
    expect((await retry()).status).toBe(202);
    expect(await usageOf(user, gateway.app)).toMatchObject({ activeJobs: 1 });
    expect((await upload(user, gateway.app)).status).toBe(429);
  });

  test("of racing uploads exactly as many are taken as there are places; the others are 429 and keep nothing", async () => {
    const gateway = stack.gatewayWith({ MAX_ACTIVE_JOBS: "3" });
    const user = await newUser();
    const before = await keptFor(user);
    const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => upload(user, gateway.app, `race-${i}.mp4`)));
    const statuses = answers.map((answer) => answer.status).sort();
    expect(statuses).toEqual([202, 202, 202, 429, 429, 429, 429, 429]);
    expect(await keptFor(user)).toEqual({
      jobs: 3,
      videos: 3,
      chunks: before.chunks + 3 * chunksPerVideo(),
    });
    expect((await usageOf(user, gateway.app)).activeJobs).toBe(3);
  });
});

describe("USER_STORAGE_BYTES", () => {
  test("an upload that would pass it is 413 naming the quota, cut while it streams, and nothing is kept", async () => {
    const quota = Math.floor(2.5 * video.length);
    const gateway = stack.gatewayWith({ USER_STORAGE_BYTES: String(quota) });
    const user = await newUser();
    for (let i = 0; i < 2; i++) expect((await upload(user, gateway.app)).status).toBe(202);
    expect(await usageOf(user, gateway.app)).toEqual({
      activeJobs: 2,
      storedBytes: 2 * video.length,
      limits: { activeJobs: 5, storedBytes: quota },
    });
    const before = await keptFor(user);
    const refused = await upload(user, gateway.app);
    expect(refused.status).toBe(413);
    const problem = (await refused.json()) as Problem;
    expect(problem).toMatchObject({ quota: "storedBytes", limit: quota, used: 2 * video.length });
    expect(problem.detail).toContain("storage quota");
    expect(problem.detail).toContain("USER_STORAGE_BYTES");
    expect(await keptFor(user)).toEqual(before);
    expect((await usageOf(user, gateway.app)).storedBytes).toBe(2 * video.length);
  });

  test("a Content-Length past the room left is 413 before the body is read; a link with no room left is 413", async () => {
    const gateway = stack.gatewayWith({ USER_STORAGE_BYTES: String(video.length) });
    const user = await newUser();
    // A body that sends its first bytes and then never ends: only an answer before reading it can come back.
    let pulled = 0;
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled++;
        if (pulled === 1) controller.enqueue(video.subarray(0, 1024));
        return new Promise(() => {});
      },
    });
    const early = await call(
      "/jobs?filename=big.mp4",
      {
        method: "POST",
        headers: { ...user.headers, "content-type": "video/mp4", "content-length": String(video.length + 1) },
        body: endless,
        duplex: "half",
        signal: AbortSignal.timeout(5000),
      } as RequestInit,
      gateway.app,
    );
    expect(early.status).toBe(413);
    expect(((await early.json()) as Problem).detail).toContain("storage quota");
    await endless.cancel().catch(() => {});

    expect((await upload(user, gateway.app)).status).toBe(202); // exactly the quota: allowed
    const before = await keptFor(user);
    const link = await postLink(user, "https://example.com/more.mp4", gateway.app);
    expect(link.status).toBe(413);
    expect((await link.json()) as Problem).toMatchObject({ quota: "storedBytes", used: video.length });
    expect(await keptFor(user)).toEqual(before);
  });

  test("racing uploads never take the stored bytes past it; the refused keep nothing", async () => {
    const quota = Math.floor(2.5 * video.length);
    const gateway = stack.gatewayWith({ USER_STORAGE_BYTES: String(quota), MAX_ACTIVE_JOBS: "20" });
    const user = await newUser();
    const before = await keptFor(user);
    const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => upload(user, gateway.app, `race-${i}.mp4`)));
    const taken = answers.filter((answer) => answer.status === 202).length;
    expect(answers.every((answer) => answer.status === 202 || answer.status === 413)).toBe(true);
    expect(taken).toBeLessThanOrEqual(2);
    expect(await keptFor(user)).toEqual({
      jobs: taken,
      videos: taken,
      chunks: before.chunks + taken * chunksPerVideo(),
    });
    expect((await usageOf(user, gateway.app)).storedBytes).toBe(taken * video.length);
    // At the edge racing uploads may all be refused: one at a time, the room left is used.
    for (let i = taken; i < 2; i++) expect((await upload(user, gateway.app)).status).toBe(202);
    expect((await upload(user, gateway.app)).status).toBe(413);
  });

  test("a link's download is held to the room left: the job fails naming the quota and keeps no video", async () => {
    let chunked = false;
    const server: Server = createServer((_request, response) => {
      // Announced (refused from the headers) or chunked (cut while it streams).
      response.writeHead(200, { "content-type": "video/mp4", ...(chunked ? {} : { "content-length": video.length }) });
      response.end(video);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/talk.mp4`;
    const room = Math.floor(video.length / 2);
    const env = { USER_STORAGE_BYTES: String(room), URL_ALLOW_HOSTS: "127.0.0.1" };
    const gateway = stack.gatewayWith(env);
    await drainQueue(stack.vhost.url, QUEUES.video);
    const converter = await startLocalConverter(converterPlace(), { LOG_LEVEL: "silent", ...env });
    try {
      const user = await newUser();
      for (const how of [false, true]) {
        chunked = how;
        const posted = await postLink(user, url, gateway.app);
        expect(posted.status).toBe(202);
        const { id } = (await posted.json()) as JobView;
        const failed = await waitForJob(stack.gateway.jobs, id, ["done", "failed"], 30_000);
        expect(failed.status).toBe("failed");
        expect(failed.error).toContain("storage quota");
        expect(await stack.mongo.db.collection("videos.files").countDocuments({ "metadata.jobId": id })).toBe(0);
      }
      expect((await usageOf(user, gateway.app)).storedBytes).toBe(0);
    } finally {
      await converter.stop();
      server.closeAllConnections();
      server.close();
    }
  }, 60_000);
});
