// lib/files.ts against MongoDB (MONGODB_URL or the stand-in): copying a GridFS file to
// disk, chunk by chunk, the way the converter spools a video before ffmpeg reads it; and
// an upload that fails leaving nothing behind, even a chunk insert that was under way.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { MongoGridFSChunkError, ObjectId } from "mongodb";
import { pendingCleanUps } from "../lib/cleanup.ts";
import { type FileStore, fileStore } from "../lib/files.ts";
import { connectMongo, isMongoUnavailable, type Mongo } from "../lib/mongo.ts";
import { NotFound } from "../lib/problem.ts";
import { type GateProxy, startGateProxy } from "./support/gate-proxy.ts";
import { dropTestDatabase, testMongoUrl } from "./support/mongo.ts";

let mongo: Mongo;
let url: string;
let files: ReturnType<typeof fileStore>;
const dir = mkdtempSync(join(tmpdir(), "m3dio-files-test-"));

beforeAll(async () => {
  url = await testMongoUrl();
  mongo = await connectMongo(url);
  files = fileStore(mongo.db);
});
afterAll(async () => {
  await mongo?.close();
  if (url) await dropTestDatabase(url);
  rmSync(dir, { recursive: true, force: true });
});

/** The driver's default GridFS chunk size. */
const CHUNK_BYTES = 255 * 1024;

const store = (data: Uint8Array) =>
  files.upload("videos", Readable.from([data]), { owner: "1", filename: "clip.mp4", contentType: "video/mp4" });

describe("saveToFile", () => {
  test("copies a file of many chunks and batches byte for byte, the short last chunk too", async () => {
    const data = randomBytes(3 * 1024 * 1024 + 12_345); // 13 chunks of 255 KiB, fetched 4 at a time
    const { id } = await store(data);
    const path = join(dir, "many");
    expect(await files.saveToFile("videos", id, path)).toBe(data.length);
    expect(Buffer.compare(readFileSync(path), data)).toBe(0);
  });

  test("copies an empty file as an empty file", async () => {
    const { id } = await store(new Uint8Array(0));
    const path = join(dir, "empty");
    expect(await files.saveToFile("videos", id, path)).toBe(0);
    expect(readFileSync(path).length).toBe(0);
  });

  test("a missing chunk is an error, not a shorter file", async () => {
    const { id } = await store(randomBytes(1024 * 1024));
    await mongo.db.collection("videos.chunks").deleteOne({ files_id: id, n: 2 });
    const error = await files.saveToFile("videos", id, join(dir, "holed")).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(MongoGridFSChunkError);
    expect((error as Error).message).toContain("chunk 2 is missing");
  });

  test("a cut-off file (its last chunks gone) is an error", async () => {
    const { id } = await store(randomBytes(1024 * 1024));
    await mongo.db.collection("videos.chunks").deleteMany({ files_id: id, n: { $gte: 3 } });
    const error = await files.saveToFile("videos", id, join(dir, "cut")).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(MongoGridFSChunkError);
    expect((error as Error).message).toContain("chunk 3 is missing"); // the first of the chunks the length promises
  });

  test("a file that is gone is NotFound", async () => {
    const error = await files
      .saveToFile("videos", new ObjectId(), join(dir, "gone"))
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(NotFound);
  });
});

/** The GridFS chunks (by file id) of `bucket` whose file is not there. */
async function chunksWithoutFile(bucket: string): Promise<string[]> {
  const present = new Set((await mongo.db.collection(`${bucket}.files`).distinct("_id")).map(String));
  const owners = (await mongo.db.collection(`${bucket}.chunks`).distinct("files_id")).map(String);
  return owners.filter((id) => !present.has(id));
}

const ONE_HOST = /^mongodb:\/\/((?:[^@/]*@)?)([^/?,:]+)(?::(\d+))?(\/[^?]*)?(\?.*)?$/;

/** The server of a mongodb:// URL with one host. */
function serverOf(url: string): { host: string; port: number } {
  const [, , host, port] = ONE_HOST.exec(url) ?? [];
  if (!host) throw new Error("a proxy needs a mongodb:// URL with one host");
  return { host: host === "localhost" ? "127.0.0.1" : host, port: Number(port ?? 27017) };
}

/** The same URL (credentials, database, options) through a proxy on 127.0.0.1:`port`. */
function throughProxy(url: string, port: number): string {
  const [, credentials, , , path, query] = ONE_HOST.exec(url) ?? [];
  // directConnection: a replica set member's hello would otherwise lead the driver around the proxy.
  return `mongodb://${credentials ?? ""}127.0.0.1:${port}${path ?? "/"}${query ? `${query}&` : "?"}directConnection=true`;
}

/** Waits until `check()` is true (at most `timeoutMs`). */
async function until(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !check(); await Bun.sleep(20))
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
}

describe("upload", () => {
  // MongoDB behind a proxy that can hold back the next request: a chunk insert the driver
  // has under way when the upload fails reaches MongoDB only once released, after the
  // upload's clean-up has had its chance. Each test starts with a file stored through the
  // proxy (GridFS indexes checked), so the next request is a chunk insert on the one
  // connection in the pool.
  let gate: GateProxy;
  let gated: Mongo;
  let gatedFiles: FileStore;
  const meta = { owner: "1", filename: "cut.mp4", contentType: "video/mp4" };
  beforeEach(async () => {
    gate = await startGateProxy(serverOf(url));
    gated = await connectMongo(throughProxy(url, gate.port));
    gatedFiles = fileStore(gated.db);
    await gatedFiles.upload("videos", Readable.from([randomBytes(1000)]), meta);
  });
  afterEach(async () => {
    await gated.close();
    await gate.stop();
  });

  test("an upload whose client goes away leaves no chunk behind, also one whose insert lands after", async () => {
    const source = new Readable({ read() {} });
    gate.holdNext();
    const uploading = gatedFiles.upload("videos", source, meta);
    source.push(randomBytes(CHUNK_BYTES)); // one whole chunk: the stream inserts it
    await gate.held();
    source.destroy(new Error("the client went away"));
    // Room for a clean-up that would not wait for the insert (it takes another connection).
    await Promise.race([uploading.catch(() => {}), Bun.sleep(300)]);
    await gate.release(); // the insert reaches MongoDB and is answered
    await expect(uploading).rejects.toThrow("the client went away");
    expect(await chunksWithoutFile("videos")).toEqual([]);
  });

  test("an upload cut off by an outage leaves no chunk behind, also one whose insert lands after", async () => {
    // One write of two chunks: the stream inserts both at once. The first is held; MongoDB is
    // then away for new connections, so the second fails, and the upload with it (a 503).
    gate.holdNext();
    await gate.refuse();
    const uploading = gatedFiles.upload("videos", Readable.from([randomBytes(2 * CHUNK_BYTES)]), meta);
    const failure = uploading.then(
      () => undefined,
      (error: unknown) => error,
    );
    await gate.held();
    // Room for the failure and a clean-up that would not wait for the first insert; then
    // MongoDB is back, and such a clean-up (retried in the background) is done.
    await Promise.race([failure, Bun.sleep(2500)]);
    await gate.accept();
    await until("the clean-ups done", () => pendingCleanUps().length === 0);
    await gate.release();
    expect(isMongoUnavailable(await failure)).toBe(true);
    await until("the clean-up done", () => pendingCleanUps().length === 0); // MongoDB was away: in the background
    expect(await chunksWithoutFile("videos")).toEqual([]);
  });
});
