// The gateway in-process (app.handle) with a real auth service on a local port,
// real RabbitMQ (a vhost of its own), real MariaDB, and MongoDB (MONGODB_URL or the stand-in).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Validator } from "@seriousme/openapi-schema-validator";
import amqp from "amqplib";
import { parse as parseDisposition } from "content-disposition";
import * as jose from "jose";
import { jwksVerifier } from "../gateway/bearer.ts";
import type { JobPage, JobView } from "../gateway.ts";
import { mp3Filename } from "../lib/files.ts";
import { connectQueue } from "../lib/queue.ts";
import { basicLogin } from "./support/client.ts";
import { makeVideo } from "./support/media.ts";
import { createTestVhost } from "./support/rabbit.ts";
import { type Stack, startStack } from "./support/stack.ts";

let stack: Stack;
let videoPath: string;
beforeAll(async () => {
  stack = await startStack();
  videoPath = await makeVideo({ seconds: 1 });
});
afterAll(() => stack?.stop());

// Short names for what almost every test uses.
const call = (path: string, init: RequestInit = {}, app = stack.gateway.app) => stack.call(path, init, app);
const newUser = () => stack.newUser("gw");
const gatewayWith = (...args: Parameters<Stack["gatewayWith"]>) => stack.gatewayWith(...args);
async function uploadForm(
  headers: Record<string, string>,
  bytes: Blob,
  name = "holiday.mp4",
  app = stack.gateway.app,
  path = "/jobs",
) {
  const form = new FormData();
  form.append("file", bytes, name);
  return call(path, { method: "POST", headers, body: form }, app);
}
const videoBlob = () => Bun.file(videoPath);
const countFiles = (bucket: string) => stack.mongo.db.collection(`${bucket}.files`).countDocuments();
const countJobs = () => stack.mongo.db.collection("jobs").countDocuments();

async function takeVideoMessage(): Promise<{ jobId: string; messageId: string } | null> {
  const connection = await amqp.connect(stack.vhost.url);
  const channel = await connection.createChannel();
  const message = await channel.get("video", { noAck: true });
  await connection.close();
  if (!message) return null;
  return { ...(JSON.parse(message.content.toString()) as { jobId: string }), messageId: message.properties.messageId };
}

describe("uploads", () => {
  test("a multipart upload is stored, recorded as queued and published to `video`", async () => {
    const user = await newUser();
    const response = await uploadForm(user.headers, videoBlob(), "My Holiday.mp4");
    expect(response.status).toBe(202);
    const job = (await response.json()) as JobView;
    expect(job).toMatchObject({
      status: "queued",
      progress: 0,
      source: { kind: "upload", filename: "My Holiday.mp4", contentType: "video/mp4" },
    });
    expect(job.source.bytes).toBe(videoBlob().size);
    expect(await takeVideoMessage()).toEqual({ jobId: job.id, messageId: job.id });
    const stored = await stack.gateway.jobs.get(new (await import("mongodb")).ObjectId(job.id));
    expect(stored?.videoFileId).toBeDefined();
    const file = await stack.gateway.files.stat("videos", stored!.videoFileId!);
    expect(file?.length).toBe(videoBlob().size);
    expect(file?.metadata).toMatchObject({ owner: stored!.userId, filename: "My Holiday.mp4" });
  });

  test("a raw video/* body works the same, named by ?filename=", async () => {
    const user = await newUser();
    const response = await call("/jobs?filename=clip.mp4", {
      method: "POST",
      headers: { ...user.headers, "content-type": "video/mp4" },
      body: videoBlob(),
    });
    expect(response.status).toBe(202);
    const job = (await response.json()) as JobView;
    expect(job.source.filename).toBe("clip.mp4");
    expect((await takeVideoMessage())?.jobId).toBe(job.id);
  });

  test("a file just over the limit is 413 and leaves no GridFS file and no job", async () => {
    const user = await newUser();
    const limit = videoBlob().size - 1;
    const small = gatewayWith({ MAX_UPLOAD_BYTES: String(limit) });
    const chunks = () => stack.mongo.db.collection("videos.chunks").countDocuments();
    const [files, jobs, chunksBefore] = [await countFiles("videos"), await countJobs(), await chunks()];
    const response = await uploadForm(user.headers, videoBlob(), "big.mp4", small.app);
    expect(response.status).toBe(413);
    expect(response.headers.get("content-type")).toStartWith("application/problem+json");
    expect(((await response.json()) as { detail: string }).detail).toContain("larger than");
    expect(await countFiles("videos")).toBe(files);
    expect(await chunks()).toBe(chunksBefore);
    expect(await countJobs()).toBe(jobs);
  });

  test("a text file named .mp4 is 415 and leaves nothing behind", async () => {
    const user = await newUser();
    const [files, jobs] = [await countFiles("videos"), await countJobs()];
    const response = await uploadForm(
      user.headers,
      new Blob(["just some text, not a video\n".repeat(500)]),
      "fake.mp4",
    );
    expect(response.status).toBe(415);
    expect(((await response.json()) as { detail: string }).detail).toContain("not a video");
    expect(await countFiles("videos")).toBe(files);
    expect(await countJobs()).toBe(jobs);
  });

  test("multipart without a `file` field is 422 naming the field", async () => {
    const user = await newUser();
    const form = new FormData();
    form.append("video", videoBlob(), "x.mp4");
    const response = await call("/jobs", { method: "POST", headers: user.headers, body: form });
    expect(response.status).toBe(422);
    expect(((await response.json()) as { detail: string }).detail).toContain("'file'");
  });

  test("a JSON or text body is 415 saying what to send", async () => {
    const user = await newUser();
    const response = await call("/jobs", {
      method: "POST",
      headers: { ...user.headers, "content-type": "text/plain" },
      body: "hello",
    });
    expect(response.status).toBe(415);
    expect(((await response.json()) as { detail: string }).detail).toContain("multipart/form-data");
  });

  test("with the broker away, the upload is 503 and no job or file is kept", async () => {
    const user = await newUser();
    const doomed = await createTestVhost();
    const brokenQueue = await connectQueue(doomed.url, stack.log, { publishTimeoutMs: 1000 });
    await doomed.drop(); // the broker closes the vhost's connections and refuses new ones
    const [files, jobs] = [await countFiles("videos"), await countJobs()];
    const response = await uploadForm(user.headers, videoBlob(), "x.mp4", gatewayWith({}, { queue: brokenQueue }).app);
    expect(response.status).toBe(503);
    expect(await countFiles("videos")).toBe(files);
    expect(await countJobs()).toBe(jobs);
    await brokenQueue.close();
  });
});

describe("tokens", () => {
  test("no token, a malformed one, an expired one and one signed by another key are all 401", async () => {
    const user = await newUser();
    const claims = JSON.parse(Buffer.from(user.token.split(".")[1]!, "base64url").toString());
    const expired = await new jose.SignJWT({ email: claims.email })
      .setProtectedHeader({ alg: stack.auth.signingKey.alg, kid: stack.auth.signingKey.kid })
      .setSubject(claims.sub)
      .setIssuedAt(Math.floor(Date.now() / 1000) - 7200)
      .setExpirationTime(Math.floor(Date.now() / 1000) - 3600)
      .sign(stack.auth.signingKey.privateKey);
    const other = await jose.generateKeyPair("EdDSA");
    const foreign = await new jose.SignJWT({ email: claims.email })
      .setProtectedHeader({ alg: "EdDSA", kid: stack.auth.signingKey.kid })
      .setSubject(claims.sub)
      .setExpirationTime("1h")
      .sign(other.privateKey);
    const none = `${Buffer.from('{"alg":"none"}').toString("base64url")}.${user.token.split(".")[1]}.`;
    for (const authorization of [
      undefined,
      "Bearer nonsense",
      `Bearer ${expired}`,
      `Bearer ${foreign}`,
      `Bearer ${none}`,
      `Basic ${btoa("a:b")}`,
    ]) {
      const response = await call("/jobs", { headers: authorization ? { authorization } : {} });
      expect(response.status).toBe(401);
      expect(response.headers.get("content-type")).toStartWith("application/problem+json");
    }
    expect((await call("/jobs", { headers: user.headers })).status).toBe(200);
  });
});

describe("jobs", () => {
  test("another user's job is 404, as is a malformed id", async () => {
    const owner = await newUser();
    const stranger = await newUser();
    const job = (await (await uploadForm(owner.headers, videoBlob())).json()) as { id: string };
    await takeVideoMessage();
    expect((await call(`/jobs/${job.id}`, { headers: owner.headers })).status).toBe(200);
    for (const path of [
      `/jobs/${job.id}`,
      `/jobs/${job.id}/audio`,
      "/jobs/not-an-id",
      "/jobs/ffffffffffffffffffffffff",
    ]) {
      const response = await call(path, { headers: stranger.headers });
      expect(response.status).toBe(404);
    }
    expect((await call(`/jobs/${job.id}`, { method: "DELETE", headers: stranger.headers })).status).toBe(404);
  });

  test("the list is the caller's own jobs, newest first, in pages", async () => {
    const user = await newUser();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push(((await (await uploadForm(user.headers, videoBlob(), `v${i}.mp4`)).json()) as { id: string }).id);
      await takeVideoMessage();
    }
    const first = (await (await call("/jobs?limit=2", { headers: user.headers })).json()) as JobPage;
    expect(first.items.map((job) => job.id)).toEqual([ids[4]!, ids[3]!]);
    const second = (await (
      await call(`/jobs?limit=2&cursor=${first.nextCursor}`, { headers: user.headers })
    ).json()) as typeof first;
    expect(second.items.map((job) => job.id)).toEqual([ids[2]!, ids[1]!]);
    const last = (await (
      await call(`/jobs?limit=2&cursor=${second.nextCursor}`, { headers: user.headers })
    ).json()) as typeof first;
    expect(last.items.map((job) => job.id)).toEqual([ids[0]!]);
    expect(last.nextCursor).toBeUndefined();
    expect((await call("/jobs?limit=0", { headers: user.headers })).status).toBe(422);
  });

  test("DELETE removes the job, its video and its MP3", async () => {
    const user = await newUser();
    const { job } = await doneJob(user.headers, new Uint8Array(1000));
    const before = [await countFiles("videos"), await countFiles("mp3s")];
    expect((await call(`/jobs/${job._id}`, { method: "DELETE", headers: user.headers })).status).toBe(204);
    expect((await call(`/jobs/${job._id}`, { headers: user.headers })).status).toBe(404);
    expect([await countFiles("videos"), await countFiles("mp3s")]).toEqual([before[0]! - 1, before[1]! - 1]);
  });

  test("the events stream sends the current state, then each change, and ends after done", async () => {
    const user = await newUser();
    const { id } = (await (await uploadForm(user.headers, videoBlob())).json()) as { id: string };
    await takeVideoMessage();
    const response = await call(`/jobs/${id}/events`, { headers: user.headers });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("text/event-stream");
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    const events: { status: string; progress: number }[] = [];
    const readEvent = async () => {
      let text = "";
      while (!text.includes("\n\n")) {
        const { value, done } = await reader.read();
        if (done) return null;
        text += typeof value === "string" ? value : decoder.decode(value, { stream: true });
      }
      const data = text
        .split("\n")
        .find((line) => line.startsWith("data:"))!
        .slice(5);
      return JSON.parse(data) as { status: string; progress: number };
    };
    events.push((await readEvent())!);
    const jobId = new (await import("mongodb")).ObjectId(id);
    await stack.gateway.jobs.startConverting(jobId);
    await stack.gateway.jobs.setProgress(jobId, 40);
    events.push((await readEvent())!);
    await stack.gateway.jobs.markDone(jobId, new (await import("mongodb")).ObjectId(), { bytes: 10, durationSec: 1 });
    events.push((await readEvent())!);
    expect(events.map((event) => `${event.status}:${event.progress}`)).toEqual([
      "queued:0",
      "converting:40",
      "done:100",
    ]);
    expect(await reader.read()).toMatchObject({ done: true });
  });
});

/** A job marked done with `mp3` stored as its audio, as the converter would leave it. */
async function doneJob(headers: Record<string, string>, mp3: Uint8Array, name = "song.mp4") {
  const { id } = (await (await uploadForm(headers, videoBlob(), name)).json()) as { id: string };
  await takeVideoMessage();
  const { ObjectId } = await import("mongodb");
  const { Readable } = await import("node:stream");
  const jobId = new ObjectId(id);
  const job = (await stack.gateway.jobs.get(jobId))!;
  const audio = await stack.gateway.files.upload("mp3s", Readable.from([Buffer.from(mp3)]), {
    owner: job.userId,
    filename: "song.mp3",
    contentType: "audio/mpeg",
  });
  await stack.gateway.jobs.startConverting(jobId);
  const done = (await stack.gateway.jobs.markDone(jobId, audio.id, { bytes: audio.bytes, durationSec: 1 }))!;
  return { job: done, audioFileId: audio.id.toHexString() };
}

describe("download", () => {
  const mp3 = Uint8Array.from({ length: 300_000 }, (_, i) => (i * 7) % 256);

  test("409 until done, then the whole MP3 with a safe attachment name", async () => {
    const user = await newUser();
    const { id } = (await (await uploadForm(user.headers, videoBlob())).json()) as { id: string };
    await takeVideoMessage();
    const early = await call(`/jobs/${id}/audio`, { headers: user.headers });
    expect(early.status).toBe(409);
    const { job } = await doneJob(user.headers, mp3, 'evil"\r\nSet-Cookie: x=1\\..\\name.mp4');
    const response = await call(`/jobs/${job._id}/audio`, { headers: user.headers });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("audio/mpeg");
    expect(response.headers.get("set-cookie")).toBeNull();
    const disposition = response.headers.get("content-disposition")!;
    expect(disposition).toStartWith("attachment;");
    expect(disposition).not.toMatch(/[\r\n]/);
    // The name as typed (quotes included), escaped by the header's own rules.
    expect(parseDisposition(disposition).parameters.filename).toBe(mp3Filename(job.source.filename));
    expect(new Uint8Array(await response.arrayBuffer())).toEqual(mp3);
  });

  test("a Range request is 206 with exactly those bytes; an impossible range is 416", async () => {
    const user = await newUser();
    const { job } = await doneJob(user.headers, mp3);
    const response = await call(`/jobs/${job._id}/audio`, { headers: { ...user.headers, range: "bytes=1000-1999" } });
    expect(response.status).toBe(206);
    expect(response.headers.get("content-range")).toBe(`bytes 1000-1999/${mp3.length}`);
    expect(new Uint8Array(await response.arrayBuffer())).toEqual(mp3.slice(1000, 2000));
    const tail = await call(`/jobs/${job._id}/audio`, { headers: { ...user.headers, range: "bytes=-10" } });
    expect(new Uint8Array(await tail.arrayBuffer())).toEqual(mp3.slice(-10));
    const impossible = await call(`/jobs/${job._id}/audio`, {
      headers: { ...user.headers, range: `bytes=${mp3.length + 5}-` },
    });
    expect(impossible.status).toBe(416);
    expect(impossible.headers.get("content-range")).toBe(`bytes */${mp3.length}`);
  });
});

describe("the reference curl flow", () => {
  test("Basic login answers the bare token; /upload queues; /download?fid= gives the owner the MP3", async () => {
    const user = await newUser();
    const login = await call("/login", basicLogin(user.email, user.password));
    expect(login.status).toBe(200);
    expect(login.headers.get("content-type")).toStartWith("text/plain");
    const token = await login.text();
    expect(token.split(".")).toHaveLength(3);
    const bearerHeaders = { authorization: `Bearer ${token}` };
    const uploaded = await uploadForm(bearerHeaders, videoBlob(), "ref.mp4", stack.gateway.app, "/upload");
    expect(uploaded.status).toBe(202);
    expect((await takeVideoMessage())?.jobId).toBe(((await uploaded.json()) as { id: string }).id);
    const { job, audioFileId } = await doneJob(bearerHeaders, new Uint8Array([1, 2, 3]));
    const shown = (await (await call(`/jobs/${job._id}`, { headers: bearerHeaders })).json()) as JobView;
    expect(shown.audio?.fileId).toBe(audioFileId); // the job tells the fid the reference flow needs
    const download = await call(`/download?fid=${audioFileId}`, { headers: bearerHeaders });
    expect(download.status).toBe(200);
    expect(new Uint8Array(await download.arrayBuffer())).toEqual(new Uint8Array([1, 2, 3]));
    const stranger = await newUser();
    expect((await call(`/download?fid=${audioFileId}`, { headers: stranger.headers })).status).toBe(404);
    const wrong = await call("/login", basicLogin(user.email, "nope"));
    expect(wrong.status).toBe(401);
  });

  test("with auth away, login is 503 and valid tokens keep working", async () => {
    const user = await newUser();
    await call("/jobs", { headers: user.headers }); // keys fetched
    const lonely = gatewayWith(
      { AUTH_URL: "http://127.0.0.1:1" },
      { verifier: jwksVerifier(`${stack.authBase}/.well-known/jwks.json`) },
    );
    const login = await call(
      "/auth/login",
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ email: user.email, password: user.password }),
      },
      lonely.app,
    );
    expect(login.status).toBe(503);
    expect(login.headers.get("content-type")).toStartWith("application/problem+json");
    expect((await call("/jobs", { headers: user.headers }, lonely.app)).status).toBe(200);
  });
});

describe("docs, health and metrics", () => {
  test("the OpenAPI document is valid OpenAPI 3.1 and lists every route", async () => {
    const spec = (await (await call("/docs/json")).json()) as {
      openapi: string;
      paths: Record<string, Record<string, unknown>>;
    };
    expect(spec.openapi).toStartWith("3.1");
    const result = await new Validator().validate(spec as never);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    const routes = Object.entries(spec.paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect(routes).toEqual(
      expect.arrayContaining([
        "POST /auth/register",
        "POST /auth/login",
        "POST /login",
        "POST /jobs",
        "GET /jobs",
        "GET /jobs/{id}",
        "DELETE /jobs/{id}",
        "GET /jobs/{id}/events",
        "GET /jobs/{id}/audio",
        "POST /upload",
        "GET /download",
        "GET /health/live",
        "GET /health/ready",
      ]),
    );
  });

  test("/docs is Swagger UI whose assets the gateway serves itself", async () => {
    const answer = await call("/docs");
    expect(answer.headers.get("content-security-policy")).toStartWith("default-src 'self'"); // test/docs.test.ts
    const page = await answer.text();
    const assets = [...page.matchAll(/(?:src|href)="([^"]+)"/g)].map((match) => match[1]!);
    expect(assets.length).toBeGreaterThanOrEqual(2);
    for (const asset of assets) {
      expect(asset).toStartWith("/docs/assets/");
      const response = await call(asset);
      expect(response.status).toBe(200);
      expect((await response.arrayBuffer()).byteLength).toBeGreaterThan(1000);
    }
  });

  test("ready reports MongoDB, RabbitMQ and the JWKS", async () => {
    const response = await call("/health/ready");
    expect(await response.json()).toEqual({
      status: "ready",
      checks: { startup: "up", mongodb: "up", rabbitmq: "up", jwks: "up" },
    });
    expect(response.status).toBe(200);
  });

  test("metrics count uploads and jobs (on the metrics app, METRICS_PORT's; the public app has no /metrics)", async () => {
    expect((await call("/metrics")).status).toBe(404);
    const text = await (await stack.gateway.metricsApp.handle(new Request("http://localhost/metrics"))).text();
    expect(text).toMatch(/gateway_jobs_created_total\{[^}]*\} [1-9]/);
    expect(text).toMatch(/gateway_upload_bytes_total\{[^}]*\} [1-9]/);
    expect(text).toMatch(/http_requests_total\{[^}]*route="\/jobs",status="202"/);
  });
});
