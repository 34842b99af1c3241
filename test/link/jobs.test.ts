// Whole link jobs through the in-process gateway and converter, with real RabbitMQ, MongoDB and ffmpeg.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { ObjectId } from "mongodb";
import { createAuth } from "../../auth.ts";
import { jwksVerifier } from "../../gateway/bearer.ts";
import { createGateway, GatewayConfig } from "../../gateway.ts";
import { parseConfig } from "../../lib/config.ts";
import { fileStore } from "../../lib/files.ts";
import { jobStore } from "../../lib/jobs.ts";
import { createLogger } from "../../lib/log.ts";
import { connectMongo, type Mongo } from "../../lib/mongo.ts";
import { connectQueue, QUEUES, type Queue } from "../../lib/queue.ts";
import { authTestConfig } from "../support/auth.ts";
import { type JobView, readEvents, statesOf } from "../support/client.ts";
import { drainQueue, settle, waitForJob as waitForFinished } from "../support/jobs.ts";
import { startLocalConverter } from "../support/local-converter.ts";
import { probe } from "../support/media.ts";
import { dropTestDatabase, testMongoUrl } from "../support/mongo.ts";
import { createTestDatabase, type TestDatabase } from "../support/mysql.ts";
import { createTestVhost } from "../support/rabbit.ts";
import { CLIP_SECONDS, clip, flaky, guard, site, startInternet, stopInternet, web } from "./internet.ts";

const log = createLogger("link-test", "silent");
const tmp = mkdtempSync(join(tmpdir(), "m3dio-link-test-"));

beforeAll(startInternet);
afterAll(stopInternet);

let database: TestDatabase;
let auth: Awaited<ReturnType<typeof createAuth>>;
let mongo: Mongo;
let mongoUrl: string;
let vhost: Awaited<ReturnType<typeof createTestVhost>>;
let queue: Queue;
let gateway: ReturnType<typeof createGateway>;
let jobs: ReturnType<typeof jobStore>;
let user: { headers: Record<string, string> };

/** A converter with a queue connection of its own; `stop()` stops both. */
const startConverter = (env: Record<string, string>) =>
  startLocalConverter(
    { mongo, mongoUrl, amqpUrl: vhost.url, tmpDir: tmp, log },
    { LOG_LEVEL: "silent", SHUTDOWN_GRACE_MS: "2000", ...env },
  );

const call = (path: string, init: RequestInit = {}) => gateway.app.handle(new Request(`http://gateway${path}`, init));
const postLink = (url: unknown) =>
  call("/jobs", {
    method: "POST",
    headers: { ...user.headers, "content-type": "application/json" },
    body: JSON.stringify({ url }),
  });

const waitForJob = (id: string, timeoutMs = 30_000) => waitForFinished(jobs, id, ["done", "failed"], timeoutMs);
const takeMp3Messages = (expected = 0) => drainQueue(vhost.url, QUEUES.mp3, expected);

/** Every `status` event of a job's SSE stream, until it closes. */
async function statusEvents(id: string): Promise<JobView[]> {
  const response = await call(`/jobs/${id}/events`, { headers: user.headers });
  expect(response.status).toBe(200);
  const { events, error } = await readEvents(response, 30_000);
  expect(error).toBeUndefined();
  return statesOf(events);
}

const videoFilesOf = (id: string) => mongo.db.collection("videos.files").countDocuments({ "metadata.jobId": id });

beforeAll(async () => {
  database = await createTestDatabase();
  vhost = await createTestVhost();
  auth = await createAuth({ config: authTestConfig(database.url, { AMQP_URL: vhost.url }) });
  auth.app.listen({ port: 0, hostname: "127.0.0.1" });
  const authBase = `http://127.0.0.1:${auth.app.server!.port}`;
  mongoUrl = await testMongoUrl();
  mongo = await connectMongo(mongoUrl);
  jobs = jobStore(mongo.db);
  queue = await connectQueue(vhost.url, log);
  const config = parseConfig(GatewayConfig, {
    AUTH_URL: authBase,
    MONGODB_URL: "mongodb://unused",
    AMQP_URL: vhost.url,
  });
  gateway = createGateway({ config, log, mongo, queue, verifier: jwksVerifier(`${authBase}/.well-known/jwks.json`) });
  await gateway.start();
  const credentials = JSON.stringify({ email: `link.${Date.now()}@example.com`, password: "link test password" });
  const json = { "content-type": "application/json" };
  expect((await call("/auth/register", { method: "POST", headers: json, body: credentials })).status).toBe(201);
  const { token } = (await (
    await call("/auth/login", { method: "POST", headers: json, body: credentials })
  ).json()) as { token: string };
  user = { headers: { authorization: `Bearer ${token}` } };
});
afterAll(async () => {
  await queue?.close();
  await vhost?.drop();
  await mongo?.close();
  if (mongoUrl) await dropTestDatabase(mongoUrl);
  await auth?.app.stop();
  await auth?.close();
  await database?.drop();
  expect(readdirSync(tmp)).toEqual([]);
});

describe("POST /jobs {url} at the gateway", () => {
  const bad: [string, unknown, string][] = [
    ["no url", undefined, "send JSON"],
    ["a number", 42, "send JSON"],
    ["not a URL", "just words", "not a valid URL"],
    ["ftp", "ftp://example.com/v.mp4", "http:// or https://"],
    ["a local file", "file:///etc/passwd", "http:// or https://"],
    ["javascript", "javascript:alert(1)", "http:// or https://"],
    ["credentials", "https://user:secret@example.com/v.mp4", "user name or password"],
    ["too long", `https://example.com/${"a".repeat(2048)}.mp4`, "longer than 2048 characters"],
    ["127.0.0.1", "http://127.0.0.1/v.mp4", "private address"],
    ["127.0.0.1 as a number", "http://2130706433/v.mp4", "private address"],
    ["[::1]", "http://[::1]:8080/v.mp4", "private address"],
    ["IPv4-mapped loopback", "http://[::ffff:127.0.0.1]/v.mp4", "private address"],
    ["the metadata service", "http://169.254.169.254/latest/meta-data/", "private address"],
    ["10.0.0.1", "https://10.0.0.1/v.mp4", "private address"],
  ];
  test.each(bad)("%s is 422 naming the field url, and nothing is queued", async (_name, url, message) => {
    const before = await jobs.collection.countDocuments();
    const response = await postLink(url);
    expect(response.status).toBe(422);
    expect(response.headers.get("content-type")).toStartWith("application/problem+json");
    const problem = (await response.json()) as { detail: string; errors: { field: string; message: string }[] };
    expect(problem.errors).toEqual([{ field: "url", message: expect.stringContaining(message) }]);
    expect(problem.detail).toContain(message);
    expect(await jobs.collection.countDocuments()).toBe(before);
  });

  test("malformed JSON is 400", async () => {
    const response = await call("/jobs", {
      method: "POST",
      headers: { ...user.headers, "content-type": "application/json" },
      body: "{url:",
    });
    expect(response.status).toBe(400);
  });

  test("a good link is 202 with a job whose source is the link; nothing is fetched by the gateway", async () => {
    const before = web.requests.length;
    const response = await postLink(site("/media/My%20Holiday%20Clip.MP4?token=abc"));
    expect(response.status).toBe(202);
    const job = (await response.json()) as { id: string; status: string; source: unknown };
    expect(job).toMatchObject({
      status: "queued",
      progress: 0,
      source: {
        kind: "url",
        url: site("/media/My%20Holiday%20Clip.MP4?token=abc"),
        filename: "My Holiday Clip.MP4",
        bytes: 0,
        contentType: "application/octet-stream",
      },
    });
    expect(web.requests.length).toBe(before);
    expect(await drainQueue<{ jobId: string }>(vhost.url, QUEUES.video)).toEqual([{ jobId: job.id }]);
    await call(`/jobs/${job.id}`, { method: "DELETE", headers: user.headers });
  });
});

describe("link jobs through the converter (localhost allow-listed)", () => {
  let converter: Awaited<ReturnType<typeof startConverter>>;
  beforeAll(async () => {
    converter = await startConverter({
      URL_ALLOW_HOSTS: "localhost",
      MAX_UPLOAD_BYTES: String(1024 * 1024),
      URL_TIMEOUT_MS: "4000",
      MAX_ATTEMPTS: "2",
      LINK_PAGES: "false", // links to video pages, and what yt-dlp makes of them: pages.test.ts
    });
  });
  afterAll(() => converter?.stop());

  test("a link behind 3 redirects is downloaded, shown as downloading, then converted to an MP3 of the video's length", async () => {
    const before = web.requests.length;
    const posted = await postLink(site("/hops/3/holiday.mp4"));
    expect(posted.status).toBe(202);
    const { id } = (await posted.json()) as { id: string };
    const events = await statusEvents(id);
    expect(events.some((event) => event.status === "converting" && event.phase === "downloading")).toBe(true);
    for (const event of events.filter((event) => event.phase === "downloading"))
      expect(event.progress).toBeLessThan(50);
    const progress = events.map((event) => event.progress);
    expect(progress).toEqual([...progress].sort((a, b) => a - b)); // never backwards
    expect(events.at(-1)).toMatchObject({ status: "done", phase: "converting", progress: 100 });

    const view = (await (await call(`/jobs/${id}`, { headers: user.headers })).json()) as Record<string, unknown>;
    expect(view).toMatchObject({
      status: "done",
      phase: "converting",
      source: { kind: "url", filename: "holiday.mp4", bytes: clip.length, contentType: "video/mp4" },
    });
    const audio = await call(`/jobs/${id}/audio`, { headers: user.headers });
    expect(audio.status).toBe(200);
    expect(audio.headers.get("content-disposition")).toContain("holiday.mp3");
    const mp3Path = join(mkdtempSync(join(tmpdir(), "m3dio-link-mp3-")), "out.mp3");
    await Bun.write(mp3Path, audio);
    const mp3 = await probe(mp3Path);
    expect(mp3.streams).toEqual(["audio:mp3", "video:mjpeg"]); // a frame of the video is its cover
    expect(Math.abs(mp3.durationSec - CLIP_SECONDS)).toBeLessThan(0.3);
    expect(web.requests.slice(before).map((request) => request.path)).toEqual([
      "/hops/3/holiday.mp4",
      "/hops/2/holiday.mp4",
      "/hops/1/holiday.mp4",
      "/hops/0/holiday.mp4",
    ]);
    expect(web.requests.at(-1)?.host).toBe(`localhost:${web.port}`);
    expect(
      await settle(
        () => videoFilesOf(id),
        (count) => count === 0,
      ),
    ).toBe(0); // the video went after success (KEEP_VIDEOS=false)
    expect(await takeMp3Messages(1)).toEqual([{ jobId: id, status: "done" }]);
  }, 30_000);

  const failures: [string, string, string][] = [
    ["6 redirects", "/hops/6/x.mp4", "too many redirects"],
    ["a 404", "/missing.mp4", "the link answered 404"],
    ["a web page", "/page.html", "the link is not a video (it is text/html)"],
    ["an endless body", "/endless.mp4", "the video is larger than 1 MiB"],
    ["an announced size over the limit", "/announced-big.mp4", "the video is larger than 1 MiB"],
    ["a body that stalls", "/slow.mp4", "the link did not answer within 4 s"],
    ["a redirect to an address not allow-listed", "/to-unlisted.mp4", "the link redirects to a private address"],
    ["a redirect to the metadata service", "/to-metadata.mp4", "the link redirects to a private address"],
    ["a redirect to a local file", "/to-file", "the link redirects somewhere we cannot follow"],
  ];
  test.each(failures)("%s fails the job once with a reason a person understands", async (_name, path, reason) => {
    const guarded = guard.requests.length;
    const { id } = (await (await postLink(site(path))).json()) as { id: string };
    const job = await waitForJob(id);
    expect(job.status).toBe("failed");
    expect(job.error).toContain(reason);
    expect(job.attempts).toBe(1);
    expect(job.phase).toBe("downloading");
    expect(job.videoFileId).toBeUndefined();
    expect(await videoFilesOf(id)).toBe(0); // the partial download is gone
    expect(await takeMp3Messages(1)).toEqual([{ jobId: id, status: "failed" }]);
    expect(guard.requests.length).toBe(guarded);
    const view = (await (await call(`/jobs/${id}`, { headers: user.headers })).json()) as { error: string };
    expect(view.error).toContain(reason);
  });

  test("a server that keeps answering 503 is retried, then given up", async () => {
    const before = web.requests.length;
    const { id } = (await (await postLink(site("/unavailable.mp4"))).json()) as { id: string };
    const job = await waitForJob(id);
    expect(job.status).toBe("failed");
    expect(job.error).toStartWith("gave up after 2 attempts");
    expect(web.requests.slice(before).map((request) => request.path)).toEqual(["/unavailable.mp4", "/unavailable.mp4"]);
    expect(await takeMp3Messages(1)).toEqual([{ jobId: id, status: "failed" }]);
  });

  test("a refused connection is retried, then given up", async () => {
    const { id } = (await (await postLink("http://localhost:1/v.mp4")).json()) as { id: string };
    const job = await waitForJob(id);
    expect(job.error).toStartWith("gave up after 2 attempts");
    await takeMp3Messages(1);
  });

  test("a 503 then a good answer: the retry downloads from scratch and the job is done", async () => {
    flaky.calls = 0;
    const { id } = (await (await postLink(site("/flaky.mp4"))).json()) as { id: string };
    const job = await waitForJob(id);
    expect(job.status).toBe("done");
    expect(job.attempts).toBe(2);
    expect(flaky.calls).toBe(2);
    expect(await takeMp3Messages(1)).toEqual([{ jobId: id, status: "done" }]);
  });

  test("a partial video left by a killed worker is removed before the download starts again", async () => {
    const files = fileStore(mongo.db);
    const job = await jobs.create({
      userId: "7",
      email: "seven@example.com",
      source: {
        kind: "url",
        url: site("/clip.mp4"),
        filename: "clip.mp4",
        bytes: 0,
        contentType: "application/octet-stream",
      },
    });
    const id = job._id.toHexString();
    await files.upload("videos", Readable.from([clip.subarray(0, 5000)]), {
      owner: "7",
      filename: "clip.mp4",
      contentType: "application/octet-stream",
      jobId: id,
    });
    await queue.publish(QUEUES.video, { jobId: id }, { messageId: id });
    const done = await waitForJob(id);
    expect(done.status).toBe("done");
    expect(done.source.bytes).toBe(clip.length);
    expect(
      await settle(
        () => videoFilesOf(id),
        (count) => count === 0,
      ),
    ).toBe(0); // the partial one and the whole one
    await takeMp3Messages(1);
  });
});

describe("stopping a worker during a download", () => {
  test("hands the job back untouched (attempt not counted) and leaves no partial video", async () => {
    const converter = await startConverter({
      URL_ALLOW_HOSTS: "localhost",
      URL_TIMEOUT_MS: "30000",
      SHUTDOWN_GRACE_MS: "0",
    });
    const { id } = (await (await postLink(site("/slow.mp4"))).json()) as { id: string };
    const downloading = await settle(
      async () => (await jobs.get(new ObjectId(id)))!,
      (job) => job.phase === "downloading" && job.progress > 0, // the body has started to arrive
      5000,
    );
    expect(downloading).toMatchObject({ phase: "downloading" });
    expect(downloading.progress).toBeGreaterThan(0);
    await converter.stop();
    const job = (await jobs.get(new ObjectId(id)))!;
    expect(job).toMatchObject({ status: "converting", phase: "downloading", attempts: 0 });
    expect(job.videoFileId).toBeUndefined();
    expect(await videoFilesOf(id)).toBe(0);
    expect(await takeMp3Messages()).toEqual([]);
    await call(`/jobs/${id}`, { method: "DELETE", headers: user.headers }); // its requeued message is then dropped
  });
});

describe("link jobs through a converter without an allow-list", () => {
  let converter: Awaited<ReturnType<typeof startConverter>>;
  beforeAll(async () => {
    converter = await startConverter({});
  });
  afterAll(() => converter?.stop());

  test("a host name that resolves to 127.0.0.1 fails the job and is never fetched", async () => {
    const before = web.requests.length;
    const { id } = (await (await postLink(site("/clip.mp4"))).json()) as { id: string };
    const job = await waitForJob(id);
    expect(job.status).toBe("failed");
    expect(job.error).toBe("the link points to a private address");
    expect(web.requests.length).toBe(before);
    expect(await takeMp3Messages(1)).toEqual([{ jobId: id, status: "failed" }]);
  });
});
