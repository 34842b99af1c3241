// Downloads of a done job's MP3 over real HTTP (the gateway listening on a port, as Bun
// serves it; auth, MariaDB, RabbitMQ and MongoDB or its stand-in as in every stack test):
// every way to it (the owner's GET /jobs/:id/audio, a signed link, /download?fid=) answers
// with a Content-Length, so a browser shows the size; HEAD answers the same headers and no
// body; a Range is 206 with the part's length; a deleted job's MP3 is not served again.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { ObjectId } from "mongodb";
import { sizedDownloads } from "../gateway/downloads.ts";
import { fileStore } from "../lib/files.ts";
import { createLogger } from "../lib/log.ts";
import { claimsOf } from "./support/accounts.ts";
import { type Stack, startStack } from "./support/stack.ts";

let stack: Stack;
let base: string;
/** The MP3's bytes: a little over four GridFS chunks, so whole answers span several. */
const mp3 = randomBytes(4 * 255 * 1024 + 1234);

beforeAll(async () => {
  stack = await startStack();
  stack.gateway.app.listen({ port: 0, hostname: "127.0.0.1" });
  base = `http://127.0.0.1:${stack.gateway.app.server!.port}`;
});
afterAll(async () => {
  await stack?.gateway.app.stop();
  await stack?.stop();
});

type User = Awaited<ReturnType<Stack["newUser"]>>;

/** A done job of the user's whose MP3 is `mp3`; answers its id and the MP3's file id. */
async function doneJob(user: User, name = "Talk.mp4") {
  const userId = claimsOf(user.token).sub!;
  const files = fileStore(stack.mongo.db);
  const audio = await files.upload("mp3s", Readable.from([mp3]), {
    owner: userId,
    filename: "talk.mp3",
    contentType: "audio/mpeg",
  });
  const job = await stack.gateway.jobs.create({
    userId,
    email: user.email,
    source: { kind: "upload", filename: name, bytes: 1000, contentType: "video/mp4" },
  });
  await stack.gateway.jobs.collection.updateOne(
    { _id: job._id },
    {
      $set: {
        status: "done",
        audioFileId: audio.id,
        audio: { bytes: mp3.length, durationSec: 60 },
        expiresAt: new Date(Date.now() + 3_600_000),
      },
    },
  );
  return { id: job._id.toHexString(), fileId: audio.id.toHexString() };
}

/** The three ways to a job's MP3, as paths with the headers each needs. */
async function waysTo(user: User, job: { id: string; fileId: string }) {
  const shared = await fetch(`${base}/jobs/${job.id}/share`, { method: "POST", headers: user.headers });
  expect(shared.status).toBe(200);
  const signed = new URL(((await shared.json()) as { url: string }).url);
  return [
    { way: "the owner's GET /jobs/:id/audio", path: `/jobs/${job.id}/audio`, headers: user.headers },
    { way: "a signed link", path: `${signed.pathname}${signed.search}`, headers: {} },
    { way: "/download?fid=", path: `/download?fid=${job.fileId}`, headers: user.headers },
  ];
}

describe("whole downloads", () => {
  test("every way to the MP3 answers with its Content-Length and the bytes", async () => {
    const user = await stack.newUser("dl");
    const job = await doneJob(user);
    for (const { way, path, headers } of await waysTo(user, job)) {
      for (const round of ["first", "again"]) {
        const answer = await fetch(`${base}${path}`, { headers });
        expect({ way, round, status: answer.status }).toEqual({ way, round, status: 200 });
        expect(answer.headers.get("content-length")).toBe(String(mp3.length));
        expect(answer.headers.get("transfer-encoding")).toBeNull();
        expect(answer.headers.get("content-type")).toBe("audio/mpeg");
        expect(answer.headers.get("accept-ranges")).toBe("bytes");
        expect(answer.headers.get("content-disposition")).toContain("Talk.mp3");
        expect(Buffer.from(await answer.arrayBuffer()).equals(mp3)).toBe(true);
      }
    }
  });

  test("HEAD answers the same headers and no body, on every way", async () => {
    const user = await stack.newUser("dl-head");
    const job = await doneJob(user);
    for (const { way, path, headers } of await waysTo(user, job)) {
      const head = await fetch(`${base}${path}`, { method: "HEAD", headers });
      expect({ way, status: head.status }).toEqual({ way, status: 200 });
      expect(head.headers.get("content-length")).toBe(String(mp3.length));
      expect(head.headers.get("accept-ranges")).toBe("bytes");
      expect(head.headers.get("content-type")).toBe("audio/mpeg");
      expect(head.headers.get("content-disposition")).toContain("Talk.mp3");
      expect((await head.arrayBuffer()).byteLength).toBe(0);
    }
    // HEAD is checked like GET: no token, no MP3
    expect((await fetch(`${base}/jobs/${job.id}/audio`, { method: "HEAD" })).status).toBe(401);
  });
});

describe("ranges", () => {
  test("a Range is 206 with the part's length and bytes, for GET and HEAD; past the end is 416", async () => {
    const user = await stack.newUser("dl-range");
    const job = await doneJob(user);
    const path = `${base}/jobs/${job.id}/audio`;
    for (const [range, start, end] of [
      ["bytes=100-199", 100, 199],
      ["bytes=300000-", 300000, mp3.length - 1],
      ["bytes=-500", mp3.length - 500, mp3.length - 1],
    ] as const) {
      const part = await fetch(path, { headers: { ...user.headers, range } });
      expect({ range, status: part.status }).toEqual({ range, status: 206 });
      expect(part.headers.get("content-length")).toBe(String(end - start + 1));
      expect(part.headers.get("content-range")).toBe(`bytes ${start}-${end}/${mp3.length}`);
      expect(Buffer.from(await part.arrayBuffer()).equals(mp3.subarray(start, end + 1))).toBe(true);

      const head = await fetch(path, { method: "HEAD", headers: { ...user.headers, range } });
      expect(head.status).toBe(206);
      expect(head.headers.get("content-length")).toBe(String(end - start + 1));
      expect(head.headers.get("content-range")).toBe(`bytes ${start}-${end}/${mp3.length}`);
    }
    const past = await fetch(path, { headers: { ...user.headers, range: `bytes=${mp3.length + 10}-` } });
    expect(past.status).toBe(416);
    expect(past.headers.get("content-range")).toBe(`bytes */${mp3.length}`);
  });
});

describe("what a download still checks", () => {
  test("a deleted job's MP3 is not answered again (a local copy serves only what the job allows)", async () => {
    const user = await stack.newUser("dl-gone");
    const job = await doneJob(user);
    const path = `${base}/jobs/${job.id}/audio`;
    expect((await fetch(path, { headers: user.headers })).status).toBe(200);
    expect((await fetch(`${base}/jobs/${job.id}`, { method: "DELETE", headers: user.headers })).status).toBe(204);
    expect((await fetch(path, { headers: user.headers })).status).toBe(404);
    expect((await fetch(path, { method: "HEAD", headers: user.headers })).status).toBe(404);
  });

  test("someone else's token gets 404, with GET and HEAD", async () => {
    const [owner, stranger] = [await stack.newUser("dl-owner"), await stack.newUser("dl-stranger")];
    const job = await doneJob(owner);
    for (const method of ["GET", "HEAD"]) {
      const answer = await fetch(`${base}/jobs/${job.id}/audio`, { method, headers: stranger.headers });
      expect({ method, status: answer.status }).toEqual({ method, status: 404 });
    }
  });
});

describe("the spool", () => {
  test("an MP3 larger than the spool's whole budget is still answered whole (streamed), and logged", async () => {
    const user = await stack.newUser("dl-big");
    const job = await doneJob(user);
    const lines: { event?: string }[] = [];
    const log = createLogger("test", "debug", { write: (line: string) => void lines.push(JSON.parse(line)) });
    const downloads = sizedDownloads(fileStore(stack.mongo.db), { log, budgetBytes: 1000 });
    try {
      const answer = await downloads.respond("mp3s", new ObjectId(job.fileId), new Request("http://localhost/x"), {});
      expect(answer.status).toBe(200);
      expect(Buffer.from(await answer.arrayBuffer()).equals(mp3)).toBe(true);
      expect(lines.map((line) => line.event)).toContain("download.unsized");
    } finally {
      downloads.close();
    }
  });
});
