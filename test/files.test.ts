// lib/files.ts against MongoDB (MONGODB_URL or the stand-in): copying a GridFS file to
// disk, chunk by chunk, the way the converter spools a video before ffmpeg reads it.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { MongoGridFSChunkError, ObjectId } from "mongodb";
import { fileStore } from "../lib/files.ts";
import { connectMongo, type Mongo } from "../lib/mongo.ts";
import { NotFound } from "../lib/problem.ts";
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
    expect((error as Error).message).toContain(`${3 * 255 * 1024} of ${1024 * 1024} bytes`);
  });

  test("a file that is gone is NotFound", async () => {
    const error = await files
      .saveToFile("videos", new ObjectId(), join(dir, "gone"))
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(NotFound);
  });
});
