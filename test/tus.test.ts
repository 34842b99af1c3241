// Resumable uploads (tus 1.0 at /uploads, issue 20): an official tus client (tus-js-client,
// in its Node mode) uploading through a TCP proxy that cuts the connection mid-way, resuming
// and converting; the protocol's answers (offsets, content types, versions, sizes, quotas,
// sniffing); a second gateway finishing what the first began; expiry and termination leaving
// nothing behind. The gateway in-process on the test's stack (real auth, MariaDB, RabbitMQ,
// MongoDB or its stand-in), listening on a local port for the client.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ObjectId } from "mongodb";
import * as tus from "tus-js-client";
import type { JobView } from "../gateway/models.ts";
import { uploadStore } from "../gateway/uploads/store.ts";
import { uploadSweeper } from "../gateway/uploads/sweeper.ts";
import { waitForJob } from "./support/jobs.ts";
import { startLocalConverter } from "./support/local-converter.ts";
import { makeVideo } from "./support/media.ts";
import { type Stack, startStack } from "./support/stack.ts";
import { startTcpProxy, type TcpProxy } from "./support/tcp-proxy.ts";

const tmp = mkdtempSync(join(tmpdir(), "m3dio-tus-test-"));
let stack: Stack;
let proxy: TcpProxy;
let video: Buffer;
let smallVideo: Buffer;
/** Set by a test: hears the bytes the proxy has carried towards the gateway. */
let cutAt: ((forwarded: number) => void) | undefined;

beforeAll(async () => {
  stack = await startStack();
  stack.gateway.app.listen({ port: 0, hostname: "127.0.0.1" });
  proxy = await startTcpProxy({ port: stack.gateway.app.server!.port!, onForwarded: (total) => cutAt?.(total) });
  // Noise barely compresses: a few MiB in a few seconds, so the connection is cut with most of it still to send.
  video = Buffer.from(await Bun.file(await makeVideo({ seconds: 4, noise: 40, size: "640x360" })).arrayBuffer());
  smallVideo = Buffer.from(await Bun.file(await makeVideo({ seconds: 1 })).arrayBuffer());
});
afterAll(async () => {
  await proxy?.stop();
  await stack?.gateway.app.stop(true);
  await stack?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

const TUS = { "tus-resumable": "1.0.0" };
const PATCH_TYPE = "application/offset+octet-stream";
type User = Awaited<ReturnType<Stack["newUser"]>>;
type App = Stack["gateway"]["app"];

const metadataHeader = (metadata: Record<string, string>) =>
  Object.entries(metadata)
    .map(([key, value]) => `${key} ${Buffer.from(value).toString("base64")}`)
    .join(",");

/** POST /uploads with the tus headers. */
const create = (user: User, length: number, metadata: Record<string, string> = {}, app?: App) =>
  stack.call(
    "/uploads",
    {
      method: "POST",
      headers: {
        ...user.headers,
        ...TUS,
        "upload-length": String(length),
        "upload-metadata": metadataHeader(metadata),
      },
    },
    app,
  );

/** An upload made for `bytes`: its URL (the answer's Location). */
async function created(user: User, bytes: Uint8Array, metadata: Record<string, string> = { filename: "clip.mp4" }) {
  const response = await create(user, bytes.length, metadata);
  expect(response.status).toBe(201);
  return response.headers.get("location")!;
}

const patch = (user: User, url: string, offset: number, bytes: Uint8Array, app?: App, type = PATCH_TYPE) =>
  stack.call(
    url,
    {
      method: "PATCH",
      headers: { ...user.headers, ...TUS, "upload-offset": String(offset), "content-type": type },
      body: bytes as Uint8Array<ArrayBuffer>,
    },
    app,
  );
const head = (user: User, url: string, app?: App) =>
  stack.call(url, { method: "HEAD", headers: { ...user.headers, ...TUS } }, app);

const uploads = () => stack.mongo.db.collection("uploads");
const chunksOf = (url: string) =>
  stack.mongo.db.collection("videos.chunks").countDocuments({ files_id: new ObjectId(url.split("/").pop()) });
const problem = async (response: Response) => (await response.json()) as { detail: string; errors?: unknown[] };

/** The MP3's stream and tags as ffprobe reads them. */
async function probe(bytes: ArrayBuffer) {
  const path = join(tmp, `${crypto.randomUUID()}.mp3`);
  await Bun.write(path, bytes);
  const child = Bun.spawn(["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", path]);
  const out = (await new Response(child.stdout).json()) as {
    streams: { codec_name: string }[];
    format: { duration: string; bit_rate: string; tags?: Record<string, string> };
  };
  return { codec: out.streams[0]?.codec_name, duration: Number(out.format.duration), tags: out.format.tags ?? {} };
}

describe("an official tus client", () => {
  test("through a proxy that cuts the connection mid-way: it resumes from the stored offset, the job converts, the MP3 is right", async () => {
    const user = await stack.newUser("tus");
    const converter = await startLocalConverter({
      mongo: stack.mongo,
      mongoUrl: stack.mongoUrl,
      amqpUrl: stack.vhost.url,
      tmpDir: tmp,
      log: stack.log,
    });
    const sent: { method: string; offset: string | null }[] = [];
    let cut = false;
    // Once half the video has passed the proxy (the client's own progress runs ahead, into socket buffers).
    cutAt = (forwarded) => {
      if (cut || forwarded < video.length / 2) return;
      cut = true;
      void proxy.cut().then(() => proxy.restore());
    };
    const jobId = await new Promise<string | null>((resolve, reject) => {
      const upload = new tus.Upload(video, {
        endpoint: `http://127.0.0.1:${proxy.port}/uploads`,
        headers: user.headers,
        metadata: { filename: "Holiday Clip.mp4", filetype: "video/mp4", bitrate: "128", title: "Sea Breeze" },
        retryDelays: [0, 100, 250, 500, 1000, 2000, 4000],
        onBeforeRequest: (request) =>
          void sent.push({ method: request.getMethod(), offset: request.getHeader("Upload-Offset") ?? null }),
        onSuccess: ({ lastResponse }) => resolve(lastResponse.getHeader("Job-Id") ?? null),
        onError: reject,
      });
      upload.start();
    });
    cutAt = undefined;
    expect(cut).toBe(true);
    // One upload made; a first PATCH from 0, then (after the cut) HEAD and a PATCH from where the bytes got to.
    expect(sent.filter((request) => request.method === "POST")).toHaveLength(1);
    const patches = sent.filter((request) => request.method === "PATCH").map((request) => Number(request.offset));
    expect(patches[0]).toBe(0);
    expect(patches.at(-1)).toBeGreaterThan(0);
    expect(patches.at(-1)).toBeLessThan(video.length);
    expect(sent.some((request) => request.method === "HEAD")).toBe(true);

    expect(jobId).toMatch(/^[0-9a-f]{24}$/);
    const job = await waitForJob(stack.gateway.jobs, jobId!);
    await converter.stop();
    expect(job.status).toBe("done");
    expect(job.source).toMatchObject({ kind: "upload", filename: "Holiday Clip.mp4", contentType: "video/mp4" });
    expect(job.source.bytes).toBe(video.length);
    expect(job.options).toMatchObject({ bitrate: 128, title: "Sea Breeze" });
    const audio = await stack.call(`/jobs/${jobId}/audio`, { headers: user.headers });
    expect(audio.status).toBe(200);
    const mp3 = await probe(await audio.arrayBuffer());
    expect(mp3.codec).toBe("mp3");
    expect(Math.abs(mp3.duration - 4)).toBeLessThan(0.5);
    expect(mp3.tags.title).toBe("Sea Breeze");
  });
});

describe("the protocol", () => {
  test("OPTIONS says what the server speaks; HEAD the offset; a request without Tus-Resumable is 412", async () => {
    const options = await stack.call("/uploads", { method: "OPTIONS" });
    expect(options.status).toBe(204);
    expect(options.headers.get("tus-version")).toBe("1.0.0");
    expect(options.headers.get("tus-extension")).toBe("creation,termination,expiration");
    expect(options.headers.get("tus-max-size")).toBe(String(2 * 1024 ** 3));

    const user = await stack.newUser("tus");
    const url = await created(user, smallVideo, { filename: "a.mp4" });
    expect(url).toMatch(/^\/uploads\/[0-9a-f]{24}$/);
    const first = await head(user, url);
    expect(first.status).toBe(200);
    expect(first.headers.get("tus-resumable")).toBe("1.0.0");
    expect(first.headers.get("upload-offset")).toBe("0");
    expect(first.headers.get("upload-length")).toBe(String(smallVideo.length));
    expect(first.headers.get("upload-metadata")).toBe(metadataHeader({ filename: "a.mp4" }));
    expect(first.headers.get("cache-control")).toBe("no-store");
    const expires = Date.parse(first.headers.get("upload-expires")!);
    expect(expires - Date.now()).toBeGreaterThan(23 * 3_600_000);

    const noVersion = await stack.call(url, { method: "HEAD", headers: user.headers });
    expect(noVersion.status).toBe(412);
    expect(noVersion.headers.get("tus-version")).toBe("1.0.0");
    // Another user's upload is none: 404; no credentials: 401.
    expect((await head(await stack.newUser("tus"), url)).status).toBe(404);
    expect((await stack.call(url, { method: "HEAD", headers: TUS })).status).toBe(401);
  });

  test("a PATCH at the wrong offset is 409, without an offset 422, with a wrong Content-Type 415, changing nothing", async () => {
    const user = await stack.newUser("tus");
    const url = await created(user, smallVideo);
    const firstPart = smallVideo.subarray(0, 5000);
    const stored = await patch(user, url, 0, firstPart);
    expect(stored.status).toBe(204);
    expect(stored.headers.get("upload-offset")).toBe("5000");
    expect(stored.headers.get("upload-expires")).not.toBeNull();

    const behind = await patch(user, url, 0, smallVideo.subarray(0, 100));
    expect(behind.status).toBe(409);
    expect(behind.headers.get("content-type")).toStartWith("application/problem+json");
    expect((await problem(behind)).detail).toContain("has 5000 bytes");
    const noOffset = await stack.call(url, {
      method: "PATCH",
      headers: { ...user.headers, ...TUS, "content-type": PATCH_TYPE },
      body: "x",
    });
    expect(noOffset.status).toBe(422);
    expect((await problem(noOffset)).errors).toEqual([
      { field: "Upload-Offset", message: "is required: the upload's offset as HEAD answers it" },
    ]);
    const wrongType = await patch(user, url, 5000, smallVideo.subarray(5000), undefined, "application/octet-stream");
    expect(wrongType.status).toBe(415);
    expect((await head(user, url)).headers.get("upload-offset")).toBe("5000");

    const rest = await patch(user, url, 5000, smallVideo.subarray(5000));
    expect(rest.status).toBe(204);
    expect(rest.headers.get("upload-offset")).toBe(String(smallVideo.length));
    expect(rest.headers.get("job-id")).toMatch(/^[0-9a-f]{24}$/);
    expect(rest.headers.get("upload-expires")).toBeNull();
    const done = await head(user, url);
    expect(done.headers.get("job-id")).toBe(rest.headers.get("job-id"));
  });

  test("a body past Upload-Length is 413; a bad option in the metadata is 422 naming it, and nothing is made", async () => {
    const user = await stack.newUser("tus");
    const url = await created(user, smallVideo);
    const tooLong = await patch(user, url, 0, Buffer.concat([smallVideo, Buffer.alloc(10)]));
    expect(tooLong.status).toBe(413);
    const before = await uploads().countDocuments();
    const bad = await create(user, 1000, { filename: "x.mp4", bitrate: "100", colour: "red" });
    expect(bad.status).toBe(422);
    const fields = ((await problem(bad)).errors as { field: string }[]).map((error) => error.field);
    expect(fields.sort()).toEqual(["bitrate", "colour"]);
    const malformed = await stack.call("/uploads", {
      method: "POST",
      headers: { ...user.headers, ...TUS, "upload-length": "1000", "upload-metadata": "filename not*base64" },
    });
    expect(malformed.status).toBe(422);
    expect((await problem(malformed)).errors).toEqual([
      { field: "Upload-Metadata", message: "must be comma-separated pairs of a key and its value in base64" },
    ]);
    expect(await uploads().countDocuments()).toBe(before);
  });
});

describe("limits", () => {
  test("creation past MAX_UPLOAD_BYTES or past the storage quota is 413 naming it, before a byte is sent", async () => {
    const user = await stack.newUser("tus");
    const small = stack.gatewayWith({ MAX_UPLOAD_BYTES: "1000000", USER_STORAGE_BYTES: "2500000" });
    const before = await uploads().countDocuments();
    const tooLarge = await create(user, 1_000_001, { filename: "big.mp4" }, small.app);
    expect(tooLarge.status).toBe(413);
    expect((await problem(tooLarge)).detail).toContain("MAX_UPLOAD_BYTES");
    // Two unfinished uploads hold back what they announced: a third that would pass the quota is refused.
    expect((await create(user, 1_000_000, {}, small.app)).status).toBe(201);
    expect((await create(user, 1_000_000, {}, small.app)).status).toBe(201);
    const pastQuota = await create(user, 1_000_000, {}, small.app);
    expect(pastQuota.status).toBe(413);
    expect(await problem(pastQuota)).toMatchObject({ quota: "storedBytes", limit: 2_500_000 });
    expect(await uploads().countDocuments()).toBe(before + 2);
  });

  test("a first chunk that is not media is 415 as soon as enough bytes arrived, and the upload is removed", async () => {
    const user = await stack.newUser("tus");
    const text = Buffer.from("just some text, not a video\n".repeat(40_000)); // ~1.1 MiB
    const url = await created(user, text, { filename: "notes.mp4" });
    // Too few bytes to tell yet: kept.
    expect((await patch(user, url, 0, text.subarray(0, 1000))).status).toBe(204);
    const refused = await patch(user, url, 1000, text.subarray(1000));
    expect(refused.status).toBe(415);
    expect((await problem(refused)).detail).toContain("not a video");
    expect((await head(user, url)).status).toBe(404);
    expect(await uploads().countDocuments({ _id: new ObjectId(url.split("/").pop()) })).toBe(0);
    expect(await chunksOf(url)).toBe(0);
  });

  test("the last byte past MAX_ACTIVE_JOBS is 429 and keeps the bytes; an empty PATCH at the end makes the job later", async () => {
    const user = await stack.newUser("tus");
    const one = stack.gatewayWith({ MAX_ACTIVE_JOBS: "1" });
    const response = await create(user, smallVideo.length, { filename: "later.mp4" }, one.app);
    const url = response.headers.get("location")!;
    // Meanwhile another job takes the only place (no converter runs here: it stays queued).
    const form = new FormData();
    form.append("file", new Blob([smallVideo as Uint8Array<ArrayBuffer>]), "first.mp4");
    const other = await stack.call("/jobs", { method: "POST", headers: user.headers, body: form }, one.app);
    expect(other.status).toBe(202);
    const refused = await patch(user, url, 0, smallVideo, one.app);
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).not.toBeNull();
    const kept = await head(user, url, one.app);
    expect(kept.headers.get("upload-offset")).toBe(String(smallVideo.length));
    expect(kept.headers.get("job-id")).toBeNull();

    const { id } = (await other.json()) as JobView;
    expect((await stack.call(`/jobs/${id}`, { method: "DELETE", headers: user.headers }, one.app)).status).toBe(204);
    const finished = await patch(user, url, smallVideo.length, new Uint8Array(0), one.app);
    expect(finished.status).toBe(204);
    const jobId = finished.headers.get("job-id")!;
    const job = (await (await stack.call(`/jobs/${jobId}`, { headers: user.headers }, one.app)).json()) as JobView;
    expect(job).toMatchObject({ status: "queued", source: { filename: "later.mp4", bytes: smallVideo.length } });
    // Finishing again answers the same job, and makes no other.
    const again = await patch(user, url, smallVideo.length, new Uint8Array(0), one.app);
    expect(again.headers.get("job-id")).toBe(jobId);
  });
});

describe("replicas, expiry and termination", () => {
  test("a second gateway instance finishes an upload the first began (the unfinished chunk is in MongoDB)", async () => {
    const user = await stack.newUser("tus");
    const second = stack.gatewayWith();
    const url = await created(user, video);
    const split = 300_001; // one full GridFS chunk (255 KiB) and a part of the next
    expect((await patch(user, url, 0, video.subarray(0, split))).status).toBe(204);
    const there = await head(user, url, second.app);
    expect(there.headers.get("upload-offset")).toBe(String(split));
    const last = await patch(user, url, split, video.subarray(split), second.app);
    expect(last.status).toBe(204);
    const jobId = last.headers.get("job-id")!;
    const job = await stack.gateway.jobs.get(new ObjectId(jobId));
    expect(job?.status).toBe("queued");
    const stored = await new Response(stack.gateway.files.download("videos", job!.videoFileId!) as never).arrayBuffer();
    expect(Buffer.from(stored).equals(video)).toBe(true);
    expect((await stack.gateway.files.stat("videos", job!.videoFileId!))?.metadata).toMatchObject({
      filename: "clip.mp4",
      contentType: "video/mp4",
    });
  });

  test("while another request writes, a PATCH is 423 and asks it to stop; a lapsed writer's lease is taken over, its stray chunks removed", async () => {
    const user = await stack.newUser("tus");
    const url = await created(user, video);
    const split = 300_001;
    expect((await patch(user, url, 0, video.subarray(0, split))).status).toBe(204);
    const _id = new ObjectId(url.split("/").pop());
    // A writer that is alive (as far as the record says)...
    await uploads().updateOne(
      { _id },
      { $set: { writer: { id: new ObjectId(), until: new Date(Date.now() + 60_000) } } },
    );
    const locked = await patch(user, url, split, video.subarray(split));
    expect(locked.status).toBe(423);
    expect(locked.headers.get("retry-after")).toBe("1");
    expect((await uploads().findOne({ _id }))?.writer?.stop).toBe(true);
    // ...then one whose lease ran out after it stored a chunk it never recorded (garbage, where chunk 1 goes).
    await uploads().updateOne(
      { _id },
      { $set: { writer: { id: new ObjectId(), until: new Date(Date.now() - 1000) } } },
    );
    await stack.mongo.db
      .collection("videos.chunks")
      .insertOne({ _id: new ObjectId(), files_id: _id, n: 1, data: Buffer.alloc(255 * 1024, 7) });
    const last = await patch(user, url, split, video.subarray(split));
    expect(last.status).toBe(204);
    const job = await stack.gateway.jobs.get(new ObjectId(last.headers.get("job-id")!));
    const stored = await new Response(stack.gateway.files.download("videos", job!.videoFileId!) as never).arrayBuffer();
    expect(Buffer.from(stored).equals(video)).toBe(true);
  });

  test("a chunk write refused while the client is still sending (another writer's chunk there) is 409 at once, and the gateway stays up", async () => {
    const user = await stack.newUser("tus");
    const url = await created(user, video);
    const _id = new ObjectId(url.split("/").pop());
    await stack.mongo.db
      .collection("videos.chunks")
      .insertOne({ _id: new ObjectId(), files_id: _id, n: 0, data: Buffer.alloc(255 * 1024, 7) });
    // Four full chunks and a little more, then the client goes quiet: the write of the four fails meanwhile.
    let cancelled = false;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(video.subarray(0, 4 * 255 * 1024 + 1000));
      },
      cancel() {
        cancelled = true;
      },
    });
    const refused = await stack.call(url, {
      method: "PATCH",
      headers: { ...user.headers, ...TUS, "upload-offset": "0", "content-type": PATCH_TYPE },
      body,
      duplex: "half",
    } as RequestInit);
    expect(refused.status).toBe(409);
    expect(cancelled).toBe(true);
    const there = await head(user, url);
    expect(there.status).toBe(200);
    expect(there.headers.get("upload-offset")).toBe("0");
  });

  test("an upload abandoned past its expiry is removed by the sweeper, with its chunks; a finished one keeps its job's file", async () => {
    const user = await stack.newUser("tus");
    const abandoned = await created(user, video);
    expect((await patch(user, abandoned, 0, video.subarray(0, 600_000))).status).toBe(204);
    expect(await chunksOf(abandoned)).toBe(2);
    const finished = await created(user, smallVideo);
    const jobId = (await patch(user, finished, 0, smallVideo)).headers.get("job-id")!;
    const past = new Date(Date.now() - 1000);
    const ids = [abandoned, finished].map((url) => new ObjectId(url.split("/").pop()));
    await uploads().updateMany({ _id: { $in: ids } }, { $set: { expiresAt: past } });
    expect((await head(user, abandoned)).status).toBe(410);

    const sweeper = uploadSweeper({
      uploads: uploadStore(stack.mongo.db),
      files: stack.gateway.files,
      jobs: stack.gateway.jobs,
      log: stack.log,
    });
    expect(await sweeper.sweepOnce()).toBeGreaterThanOrEqual(2);
    expect(await uploads().countDocuments({ _id: { $in: ids } })).toBe(0);
    expect(await chunksOf(abandoned)).toBe(0);
    expect((await head(user, abandoned)).status).toBe(404);
    const job = await stack.gateway.jobs.get(new ObjectId(jobId));
    expect(await stack.gateway.files.stat("videos", job!.videoFileId!)).not.toBeNull();
  });

  test("DELETE terminates an upload and removes its bytes", async () => {
    const user = await stack.newUser("tus");
    const url = await created(user, video);
    expect((await patch(user, url, 0, video.subarray(0, 700_000))).status).toBe(204);
    expect(await chunksOf(url)).toBe(2);
    const deleted = await stack.call(url, { method: "DELETE", headers: { ...user.headers, ...TUS } });
    expect(deleted.status).toBe(204);
    expect(deleted.headers.get("tus-resumable")).toBe("1.0.0");
    expect((await head(user, url)).status).toBe(404);
    expect(await chunksOf(url)).toBe(0);
    expect((await patch(user, url, 700_000, video.subarray(700_000))).status).toBe(404);
  });

  test("the same Idempotency-Key answers the same upload; with other headers it is 422", async () => {
    const user = await stack.newUser("tus");
    const send = (length: number) =>
      stack.call("/uploads", {
        method: "POST",
        headers: { ...user.headers, ...TUS, "upload-length": String(length), "idempotency-key": "k-1" },
      });
    const first = await send(1000);
    const again = await send(1000);
    expect([first.status, again.status]).toEqual([201, 201]);
    expect(again.headers.get("location")).toBe(first.headers.get("location"));
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect((await send(2000)).status).toBe(422);
  });
});
