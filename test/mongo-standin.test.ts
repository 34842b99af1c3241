// The MongoDB the tests use, seen through the real driver. Without MONGODB_URL
// this exercises the in-memory stand-in; with it, the same assertions run
// against a real server, which keeps the stand-in honest.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  Binary,
  type Db,
  GridFSBucket,
  Long,
  MongoBulkWriteError,
  MongoClient,
  MongoServerError,
  ObjectId,
} from "mongodb";
import { dropTestDatabase, testMongoUrl } from "./support/mongo.ts";

let url: string;
let client: MongoClient;
let db: Db;

beforeAll(async () => {
  url = await testMongoUrl();
  client = new MongoClient(url, { serverSelectionTimeoutMS: 5000 });
  await client.connect();
  db = client.db();
});

afterAll(async () => {
  await client?.close();
  if (url) await dropTestDatabase(url);
});

const sha256 = (data: Uint8Array): string => createHash("sha256").update(data).digest("hex");

async function readAll(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part);
  return Buffer.concat(parts);
}

describe("GridFS", () => {
  const data = randomBytes(20 * 1024 * 1024);
  let bucket: GridFSBucket;
  let id: ObjectId;

  beforeAll(async () => {
    bucket = new GridFSBucket(db, { bucketName: "videos" });
    const upload = bucket.openUploadStream("clip.mp4", { metadata: { owner: "alice", kind: "video" } });
    await pipeline(Readable.from([data]), upload);
    id = upload.id as ObjectId;
    await Bun.sleep(5); // distinct uploadDates (millisecond resolution), so "newest first" has one answer
    const other = bucket.openUploadStream("other.mp4", { metadata: { owner: "bob" } });
    await pipeline(Readable.from([Buffer.from("small file")]), other);
  });

  test("a 20 MiB file comes back byte for byte", async () => {
    const back = await readAll(bucket.openDownloadStream(id));
    expect(back.length).toBe(data.length);
    expect(sha256(back)).toBe(sha256(data));
    const [file] = await bucket.find({ _id: id }).toArray();
    expect(file?.length).toBe(data.length);
    expect(file?.uploadDate).toBeInstanceOf(Date);
    expect(await db.collection("videos.chunks").countDocuments({ files_id: id })).toBe(
      Math.ceil(data.length / (255 * 1024)),
    );
  });

  test("a range download returns exactly the requested bytes", async () => {
    const start = 255 * 1024 * 3 + 100; // not on a chunk boundary
    const end = start + 1024 * 1024 + 7;
    const part = await readAll(bucket.openDownloadStream(id, { start, end }));
    expect(part.equals(data.subarray(start, end))).toBe(true);
  });

  test("files are found by metadata", async () => {
    const mine = await bucket.find({ "metadata.owner": "alice" }).toArray();
    expect(mine.map((f) => f.filename)).toEqual(["clip.mp4"]);
    const newestFirst = await bucket.find({}, { sort: { uploadDate: -1 } }).toArray();
    expect(newestFirst.map((f) => f.filename)).toEqual(["other.mp4", "clip.mp4"]);
  });

  test("delete removes the file and its chunks", async () => {
    const doomed = bucket.openUploadStream("doomed.bin");
    await pipeline(Readable.from([randomBytes(600 * 1024)]), doomed);
    await bucket.delete(doomed.id);
    expect(await bucket.find({ _id: doomed.id }).toArray()).toEqual([]);
    expect(await db.collection("videos.chunks").countDocuments({ files_id: doomed.id })).toBe(0);
    expect(readAll(bucket.openDownloadStream(doomed.id))).rejects.toThrow(/FileNotFound|not found/i);
    expect(bucket.delete(doomed.id)).rejects.toThrow(/not found/i);
  });
});

interface Item {
  name: string;
  when?: Date;
  big?: Long | number;
  bytes?: Binary;
  ref?: ObjectId;
  n?: number;
  tags?: string[];
  created?: boolean;
  seen?: boolean;
}

describe("documents", () => {
  test("CRUD keeps ObjectId, Date, Long and Binary types", async () => {
    const items = db.collection<Item>("items");
    const when = new Date("2024-05-06T07:08:09.123Z");
    const big = Long.fromString("9007199254740993"); // beyond 2^53: must stay int64
    const bytes = new Binary(Buffer.from([0, 1, 2, 250]));
    const ref = new ObjectId();
    const { insertedId } = await items.insertOne({ name: "a", when, big, bytes, ref, n: 1.5 });

    const doc = await items.findOne({ _id: insertedId });
    expect(doc?._id).toEqual(insertedId);
    expect(doc?.when).toEqual(when);
    expect(doc?.big).toBeInstanceOf(Long);
    expect(String(doc?.big)).toBe("9007199254740993");
    expect(Buffer.from((doc!.bytes as Binary).buffer)).toEqual(Buffer.from([0, 1, 2, 250]));
    expect((doc!.ref as ObjectId).equals(ref)).toBe(true);
    expect(await items.findOne({ ref })).toMatchObject({ name: "a" });
    expect(await items.findOne({ when })).toMatchObject({ name: "a" });
    expect(await items.countDocuments({ big: { $gt: 1000 } })).toBe(1); // int64 compares with numbers

    const updated = await items.updateOne(
      { _id: insertedId },
      { $set: { name: "b" }, $inc: { n: 1 }, $push: { tags: "x" } },
    );
    expect(updated).toMatchObject({ matchedCount: 1, modifiedCount: 1 });
    expect<unknown>(
      await items.findOne({ _id: insertedId }, { projection: { _id: 0, name: 1, n: 1, tags: 1 } }),
    ).toEqual({ name: "b", n: 2.5, tags: ["x"] });
    expect(await items.updateOne({ _id: insertedId }, { $set: { name: "b" } })).toMatchObject({
      matchedCount: 1,
      modifiedCount: 0,
    });

    await items.replaceOne({ _id: insertedId }, { name: "c" });
    expect(await items.findOne({ _id: insertedId })).toEqual({ _id: insertedId, name: "c" });

    const upsert = await items.updateOne(
      { name: "d" },
      { $set: { n: 4 }, $setOnInsert: { created: true } },
      { upsert: true },
    );
    expect(upsert.upsertedCount).toBe(1);
    expect<unknown>(await items.findOne({ _id: upsert.upsertedId! }, { projection: { _id: 0 } })).toEqual({
      name: "d",
      n: 4,
      created: true,
    });

    // An upsert whose filter names the `_id` makes the document with that id, as MongoDB does.
    const byId = await items.updateOne(
      { _id: "msg_1" as unknown as ObjectId },
      { $setOnInsert: { name: "f" } },
      { upsert: true },
    );
    expect(byId).toMatchObject({ upsertedCount: 1, upsertedId: "msg_1" });
    expect<unknown>(await items.findOne({ _id: "msg_1" as unknown as ObjectId })).toEqual({ _id: "msg_1", name: "f" });
    const again = await items.findOneAndUpdate(
      { _id: "msg_1" as unknown as ObjectId },
      { $setOnInsert: { name: "g" } },
      { upsert: true, returnDocument: "after" },
    );
    expect<unknown>(again).toEqual({ _id: "msg_1", name: "f" });

    await items.insertMany([{ name: "e" }, { name: "e" }, { name: "e" }]);
    expect(await items.updateMany({ name: "e" }, { $set: { seen: true } })).toMatchObject({
      matchedCount: 3,
      modifiedCount: 3,
    });
    expect(await items.deleteOne({ name: "e" })).toMatchObject({ deletedCount: 1 });
    expect(await items.deleteMany({ name: "e" })).toMatchObject({ deletedCount: 2 });
    expect(await items.deleteOne({ _id: insertedId })).toMatchObject({ deletedCount: 1 });
    expect(await items.findOne({ _id: insertedId })).toBeNull();
  });

  test("sort, skip, limit and projection", async () => {
    const events = db.collection("events");
    const base = Date.parse("2024-01-01T00:00:00Z");
    await events.insertMany(
      Array.from({ length: 30 }, (_, i) => ({ i, group: i % 3, createdAt: new Date(base + ((i * 7) % 30) * 1000) })),
    );
    const newest = await events
      .find({}, { projection: { _id: 0, i: 1 } })
      .sort({ createdAt: -1 })
      .skip(2)
      .limit(3)
      .toArray();
    const expected = Array.from({ length: 30 }, (_, i) => ({ i, t: (i * 7) % 30 }))
      .sort((a, b) => b.t - a.t)
      .slice(2, 5)
      .map(({ i }) => ({ i }));
    expect<unknown[]>(newest).toEqual(expected);
    const byGroupThenI = await events
      .find({ group: { $in: [1, 2] }, i: { $lt: 9 } })
      .sort({ group: -1, i: 1 })
      .toArray();
    expect(byGroupThenI.map((d) => d.i)).toEqual([2, 5, 8, 1, 4, 7]);
  });

  test("a unique index rejects duplicates with code 11000", async () => {
    const users = db.collection("users");
    expect(await users.createIndex({ email: 1 }, { unique: true })).toBe("email_1");
    expect(await users.createIndex({ email: 1 }, { unique: true })).toBe("email_1"); // idempotent
    await users.insertOne({ email: "a@example.com" });
    const dup = await users.insertOne({ email: "a@example.com" }).catch((e: unknown) => e);
    expect(dup).toBeInstanceOf(MongoServerError);
    expect((dup as MongoServerError).code).toBe(11000);
    expect((dup as MongoServerError).message).toContain("E11000 duplicate key error");

    const { insertedId } = await users.insertOne({ email: "b@example.com" });
    const viaUpdate = await users
      .updateOne({ _id: insertedId }, { $set: { email: "a@example.com" } })
      .catch((e: unknown) => e);
    expect((viaUpdate as MongoServerError).code).toBe(11000);
    const viaFindAndModify = await users
      .findOneAndUpdate({ _id: insertedId }, { $set: { email: "a@example.com" } })
      .catch((e: unknown) => e);
    expect((viaFindAndModify as MongoServerError).code).toBe(11000);
    expect(await users.findOne({ _id: insertedId })).toMatchObject({ email: "b@example.com" });

    const ordered = await users
      .insertMany([{ email: "c@example.com" }, { email: "a@example.com" }, { email: "d@example.com" }])
      .catch((e: unknown) => e);
    expect(ordered).toBeInstanceOf(MongoBulkWriteError);
    expect((ordered as MongoBulkWriteError).code).toBe(11000);
    expect(await users.countDocuments({ email: { $in: ["c@example.com", "d@example.com"] } })).toBe(1); // stopped at the error

    const dupId = await users.insertOne({ _id: insertedId, email: "z@example.com" }).catch((e: unknown) => e);
    expect((dupId as MongoServerError).code).toBe(11000);

    const names = (await users.listIndexes().toArray()).map((i) => i.name);
    expect(names).toEqual(["_id_", "email_1"]);
  });

  test("findOneAndUpdate only moves a job from the expected status", async () => {
    const jobs = db.collection("jobs");
    const { insertedId } = await jobs.insertOne({ status: "queued", progress: 0 });
    const moved = await jobs.findOneAndUpdate(
      { _id: insertedId, status: "queued" },
      { $set: { status: "converting", progress: 5 } },
      { returnDocument: "after" },
    );
    expect(moved).toMatchObject({ _id: insertedId, status: "converting", progress: 5 });
    const again = await jobs.findOneAndUpdate(
      { _id: insertedId, status: "queued" },
      { $set: { status: "converting" } },
      { returnDocument: "after" },
    );
    expect(again).toBeNull();
    const before = await jobs.findOneAndUpdate({ _id: insertedId, status: "converting" }, { $set: { status: "done" } });
    expect(before).toMatchObject({ status: "converting" }); // returnDocument defaults to 'before'
    expect(await jobs.findOneAndDelete({ _id: insertedId })).toMatchObject({ status: "done" });
    expect(await jobs.findOne({ _id: insertedId })).toBeNull();
  });

  test("a cursor fetches later batches with getMore", async () => {
    const many = db.collection("many");
    await many.insertMany(Array.from({ length: 250 }, (_, i) => ({ i })));
    const seen: number[] = [];
    for await (const doc of many.find({}, { batchSize: 10 }).sort({ i: 1 })) seen.push(doc.i as number);
    expect(seen).toEqual(Array.from({ length: 250 }, (_, i) => i));
    const cursor = many.find({}, { batchSize: 10 });
    expect(await cursor.next()).toMatchObject({ i: 0 });
    expect(cursor.id?.isZero()).toBe(false); // the server kept the rest for later
    await cursor.close(); // killCursors, answered ok
    expect(cursor.killed).toBe(true);
  });

  test("countDocuments, distinct and aggregate", async () => {
    const sales = db.collection("sales");
    await sales.insertMany([
      { shop: "north", item: "tea", qty: 3 },
      { shop: "north", item: "cake", qty: 1 },
      { shop: "south", item: "tea", qty: 5 },
      { shop: "east", item: "tea", qty: 2, tags: ["promo", "new"] },
    ]);
    expect(await sales.countDocuments()).toBe(4);
    expect(await sales.countDocuments({ item: "tea" })).toBe(3);
    expect(await sales.countDocuments({}, { skip: 1, limit: 2 })).toBe(2);
    expect((await sales.distinct("shop")).sort()).toEqual(["east", "north", "south"]);
    expect((await sales.distinct("tags")).sort()).toEqual(["new", "promo"]);
    const totals = await sales
      .aggregate([
        { $match: { item: "tea" } },
        { $group: { _id: "$shop", total: { $sum: "$qty" } } },
        { $sort: { total: -1 } },
      ])
      .toArray();
    expect(totals).toEqual([
      { _id: "south", total: 5 },
      { _id: "north", total: 3 },
      { _id: "east", total: 2 },
    ]);
    const [counted] = await sales.aggregate([{ $match: { qty: { $gte: 2 } } }, { $count: "n" }]).toArray();
    expect(counted).toEqual({ n: 3 });
  });
});

describe("errors and the catalog", () => {
  test("listIndexes on a missing collection fails with code 26", async () => {
    const error = await db
      .collection("nope")
      .listIndexes()
      .toArray()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MongoServerError);
    expect((error as MongoServerError).code).toBe(26);
  });

  test("an unknown command fails with code 59", async () => {
    const error = await db.command({ noSuchCmd: 1 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MongoServerError);
    expect((error as MongoServerError).code).toBe(59);
    expect((error as MongoServerError).codeName).toBe("CommandNotFound");
  });

  test("collections are listed and dropped", async () => {
    await db.collection("temp").insertOne({ x: 1 });
    const names = (await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name);
    expect(names).toContain("temp");
    expect(await db.collection("temp").drop()).toBe(true);
    expect((await db.listCollections({ name: "temp" }).toArray()).length).toBe(0);
    expect(await db.collection("temp").countDocuments()).toBe(0);
  });
});

test("many clients insert concurrently and every document is counted", async () => {
  const clients = Array.from(
    { length: 20 },
    () => new MongoClient(url, { maxPoolSize: 5, serverSelectionTimeoutMS: 5000 }),
  );
  try {
    await Promise.all(
      clients.map((c, k) =>
        Promise.all(Array.from({ length: 25 }, (_, i) => c.db().collection("parallel").insertOne({ k, i }))),
      ),
    );
    expect(await db.collection("parallel").countDocuments()).toBe(500);
    expect(await db.collection("parallel").countDocuments({ k: 19 })).toBe(25);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
});

test("the CLI prints its URL first and serves until killed", async () => {
  const proc = Bun.spawn([process.execPath, "test/support/mongo-standin.ts", "--port", "0"], {
    cwd: `${import.meta.dir}/..`,
    stdout: "pipe",
    stderr: "ignore",
  });
  try {
    const reader = proc.stdout.getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    reader.releaseLock();
    const first = text.split("\n")[0]!;
    expect(first).toMatch(/^mongodb:\/\/127\.0\.0\.1:\d+$/);
    const cli = new MongoClient(`${first}/cli`, { serverSelectionTimeoutMS: 5000 });
    try {
      expect(await cli.db().command({ ping: 1 })).toMatchObject({ ok: 1 });
      await cli.db().collection("c").insertOne({ hello: "world" });
      expect<unknown>(
        await cli
          .db()
          .collection("c")
          .findOne({}, { projection: { _id: 0 } }),
      ).toEqual({ hello: "world" });
    } finally {
      await cli.close();
    }
  } finally {
    proc.kill("SIGTERM");
  }
  expect(await proc.exited).toBe(0);
});
