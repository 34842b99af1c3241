// GET /jobs/:id/events under many streams (issue 15): every stream of one job shares one
// read a tick, the gateway stops reading a job when its last stream leaves, one user may
// hold only MAX_STREAMS_PER_USER streams open (429 past it), and each stream still gets
// every change and ends as it did. Reads are counted with the MongoDB driver's command
// monitoring on the gateway's own client; the assertions are counts, never times.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as jose from "jose";
import { type CommandStartedEvent, MongoClient, type ObjectId } from "mongodb";
import type { Mongo } from "../lib/mongo.ts";
import type { SseEvent } from "./support/client.ts";
import { type Stack, startStack } from "./support/stack.ts";

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(() => stack?.stop());

const POLL_FAST_MS = 100; // gateway/live-events.ts: the quickest a followed job is re-read

/** A MongoDB client for one gateway that counts the reads of each job and how many were in flight at once. */
async function countingMongo() {
  const client = new MongoClient(stack.mongoUrl, { monitorCommands: true });
  await client.connect();
  const db = client.db();
  const reads = new Map<string, number>();
  const inFlight = new Map<number, string>();
  let mostAtOnce = 0;
  client.on("commandStarted", (event: CommandStartedEvent) => {
    const id = event.command.filter?._id;
    if (event.commandName !== "find" || event.command.find !== "jobs" || !id || typeof id !== "object") return;
    const key = String(id);
    reads.set(key, (reads.get(key) ?? 0) + 1);
    inFlight.set(event.requestId, key);
    mostAtOnce = Math.max(mostAtOnce, [...inFlight.values()].filter((other) => other === key).length);
  });
  const settled = (event: { requestId: number }) => inFlight.delete(event.requestId);
  client.on("commandSucceeded", settled);
  client.on("commandFailed", settled);
  const mongo: Mongo = {
    client,
    db,
    ping: async () => void (await db.command({ ping: 1 })),
    close: () => client.close(),
  };
  return {
    mongo,
    readsOf: (id: ObjectId) => reads.get(id.toHexString()) ?? 0,
    /** The most reads of one job in flight at once since the last reset. */
    mostAtOnce: () => mostAtOnce,
    resetMostAtOnce() {
      mostAtOnce = 0;
    },
  };
}

async function newUserWithJob() {
  const user = await stack.newUser("live");
  const userId = jose.decodeJwt(user.token).sub!;
  const job = await stack.gateway.jobs.create({
    userId,
    email: user.email,
    source: { kind: "upload", filename: "clip.mp4", bytes: 1000, contentType: "video/mp4" },
  });
  return { user, job };
}

/** One open event stream, read an event at a time. */
async function openStream(app: { handle(request: Request): Promise<Response> }, headers: HeadersInit, id: string) {
  const closing = new AbortController();
  const response = await app.handle(
    new Request(`http://localhost/jobs/${id}/events`, { headers, signal: closing.signal }),
  );
  // Through app.handle the body's chunks are strings; over a socket, bytes.
  const reader = response.status === 200 ? response.body!.getReader() : undefined;
  const decoder = new TextDecoder();
  let buffer = "";
  /** The next event; null once the server has ended the stream. */
  async function next(): Promise<SseEvent | null> {
    while (!buffer.includes("\n\n")) {
      const chunk = (await reader!.read()) as ReadableStreamReadResult<Uint8Array | string>;
      if (chunk.done) return null;
      buffer += typeof chunk.value === "string" ? chunk.value : decoder.decode(chunk.value, { stream: true });
    }
    const block = buffer.slice(0, buffer.indexOf("\n\n"));
    buffer = buffer.slice(block.length + 2);
    const field = (name: string) =>
      block
        .split("\n")
        .find((line) => line.startsWith(`${name}:`))
        ?.slice(name.length + 1)
        .trim();
    return { event: field("event") ?? "message", data: field("data") ?? "" };
  }
  /** The next `status` event's job, as `status:progress`. */
  async function nextState(): Promise<string | null> {
    const event = await next();
    if (!event) return null;
    const job = JSON.parse(event.data) as { status: string; progress: number };
    return `${event.event}:${job.status}:${job.progress}`;
  }
  return { response, next, nextState, close: () => closing.abort() };
}
type Stream = Awaited<ReturnType<typeof openStream>>;

const openMany = (count: number, app: Parameters<typeof openStream>[0], headers: HeadersInit, id: string) =>
  Promise.all(Array.from({ length: count }, () => openStream(app, headers, id)));
const everyState = (streams: Stream[]) => Promise.all(streams.map((stream) => stream.nextState()));

/** Until `check()` holds (at most 10 s): the server frees a stream's slot once the stream has unwound. */
async function eventually(check: () => Promise<boolean>) {
  for (let tries = 0; tries < 200; tries++) {
    if (await check()) return true;
    await Bun.sleep(50);
  }
  return false;
}

describe("many streams of one job", () => {
  test("share one read a tick, never two at once, and each still gets every change and ends after done", async () => {
    const counting = await countingMongo();
    const gateway = stack.gatewayWith({ MAX_STREAMS_PER_USER: "100" }, { mongo: counting.mongo });
    const { user, job } = await newUserWithJob();
    const streams = await openMany(60, gateway.app, user.headers, job._id.toHexString());
    expect(streams.map((stream) => stream.response.status)).toEqual(Array(60).fill(200));
    expect(await everyState(streams)).toEqual(Array(60).fill("status:queued:0"));

    // While the job sits still: at most one read a tick, whatever the number of streams.
    const before = counting.readsOf(job._id);
    counting.resetMostAtOnce();
    const started = performance.now();
    await Bun.sleep(1000);
    const reads = counting.readsOf(job._id) - before;
    const ticks = Math.ceil((performance.now() - started) / POLL_FAST_MS) + 1;
    expect(reads).toBeGreaterThan(0);
    expect(reads).toBeLessThanOrEqual(ticks);
    expect(reads).toBeLessThan(streams.length / 4); // one read per stream and tick would be 60 or more
    expect(counting.mostAtOnce()).toBe(1);

    await stack.gateway.jobs.startConverting(job._id);
    await stack.gateway.jobs.setProgress(job._id, 30);
    expect(await everyState(streams)).toEqual(Array(60).fill("status:converting:30"));
    await stack.gateway.jobs.setProgress(job._id, 70);
    expect(await everyState(streams)).toEqual(Array(60).fill("status:converting:70"));
    await stack.gateway.jobs.markDone(job._id, job._id, { bytes: 10, durationSec: 1 });
    expect(await everyState(streams)).toEqual(Array(60).fill("status:done:100"));
    expect(await everyState(streams)).toEqual(Array(60).fill(null)); // every stream ended
    expect(counting.mostAtOnce()).toBe(1);

    // A finished job is read no more.
    const afterDone = counting.readsOf(job._id);
    await Bun.sleep(700);
    expect(counting.readsOf(job._id)).toBe(afterDone);
    await counting.mongo.close();
  });

  test("the gateway stops reading a job when its last stream leaves, and the next stream starts again", async () => {
    const counting = await countingMongo();
    const gateway = stack.gatewayWith({}, { mongo: counting.mongo });
    const { user, job } = await newUserWithJob();
    const streams = await openMany(5, gateway.app, user.headers, job._id.toHexString());
    expect(await everyState(streams)).toEqual(Array(5).fill("status:queued:0"));
    const openReads = counting.readsOf(job._id);
    expect(await eventually(async () => counting.readsOf(job._id) > openReads)).toBe(true); // it is being followed

    for (const stream of streams) stream.close();
    await Bun.sleep(1000); // a read begun before the last stream left may still land
    const settled = counting.readsOf(job._id);
    await Bun.sleep(1000);
    expect(counting.readsOf(job._id)).toBe(settled);

    const again = await openStream(gateway.app, user.headers, job._id.toHexString());
    expect(await again.nextState()).toBe("status:queued:0");
    await stack.gateway.jobs.markFailed(job._id, "not a video");
    expect(await again.nextState()).toBe("status:failed:0");
    expect(await again.next()).toBeNull();
    await counting.mongo.close();
  });

  test("a stream whose client reads slowly still gets the job's end after its watch has stopped", async () => {
    const gateway = stack.gatewayWith();
    const { user, job } = await newUserWithJob();
    const [slow, quick] = await openMany(2, gateway.app, user.headers, job._id.toHexString());
    expect(await everyState([slow!, quick!])).toEqual(["status:queued:0", "status:queued:0"]);
    await stack.gateway.jobs.startConverting(job._id);
    await stack.gateway.jobs.setProgress(job._id, 30);
    expect(await quick!.nextState()).toBe("status:converting:30");
    await stack.gateway.jobs.markDone(job._id, job._id, { bytes: 10, durationSec: 1 });
    expect(await quick!.nextState()).toBe("status:done:100");
    expect(await quick!.next()).toBeNull(); // the watch has read the end and stopped
    // The slow stream was held up writing converting:30 meanwhile; it reads on only now.
    expect(await slow!.nextState()).toBe("status:converting:30");
    expect(await slow!.nextState()).toBe("status:done:100");
    expect(await slow!.next()).toBeNull();
  });

  test("a deleted job sends `deleted` to every stream; stopping the gateway ends every stream", async () => {
    const gateway = stack.gatewayWith();
    const { user, job } = await newUserWithJob();
    const id = job._id.toHexString();
    const streams = await openMany(5, gateway.app, user.headers, id);
    expect(await everyState(streams)).toEqual(Array(5).fill("status:queued:0"));
    await stack.gateway.jobs.remove(job._id);
    const deleted = await Promise.all(streams.map((stream) => stream.next()));
    expect(deleted).toEqual(Array(5).fill({ event: "deleted", data: JSON.stringify({ id }) }));
    expect(await Promise.all(streams.map((stream) => stream.next()))).toEqual(Array(5).fill(null));

    const other = await newUserWithJob();
    const kept = await openMany(5, gateway.app, other.user.headers, other.job._id.toHexString());
    expect(await everyState(kept)).toEqual(Array(5).fill("status:queued:0"));
    await gateway.stop();
    expect(await Promise.all(kept.map((stream) => stream.next()))).toEqual(Array(5).fill(null));
  });

  test("a failed read ends every stream of the job (its client reopens it)", async () => {
    const counting = await countingMongo();
    const gateway = stack.gatewayWith({}, { mongo: counting.mongo });
    const { user, job } = await newUserWithJob();
    const streams = await openMany(3, gateway.app, user.headers, job._id.toHexString());
    expect(await everyState(streams)).toEqual(Array(3).fill("status:queued:0"));
    await counting.mongo.close(); // every read from now on fails
    expect(await Promise.all(streams.map((stream) => stream.next()))).toEqual(Array(3).fill(null));
  });
});

describe("streams per user", () => {
  test("past MAX_STREAMS_PER_USER a stream is 429 with Retry-After, naming the limit, without a read", async () => {
    const counting = await countingMongo();
    const gateway = stack.gatewayWith({ MAX_STREAMS_PER_USER: "3" }, { mongo: counting.mongo });
    const { user, job } = await newUserWithJob();
    const id = job._id.toHexString();
    const held = await openMany(3, gateway.app, user.headers, id);
    expect(held.map((stream) => stream.response.status)).toEqual([200, 200, 200]);
    expect(await everyState(held)).toEqual(Array(3).fill("status:queued:0"));

    // A stream of another of the user's jobs is refused before its job is read.
    const second = await stack.gateway.jobs.create({ userId: job.userId, email: job.email, source: job.source });
    const refused = await openStream(gateway.app, user.headers, second._id.toHexString());
    expect(refused.response.status).toBe(429);
    expect(refused.response.headers.get("content-type")).toStartWith("application/problem+json");
    expect(Number(refused.response.headers.get("retry-after"))).toBeGreaterThan(0);
    const problem = (await refused.response.json()) as { status: number; detail: string };
    expect(problem.status).toBe(429);
    expect(problem.detail).toContain("at most 3 event streams");
    expect(problem.detail).toContain("MAX_STREAMS_PER_USER");
    expect(counting.readsOf(second._id)).toBe(0);

    // Another user is not counted against this one.
    const other = await newUserWithJob();
    const theirs = await openStream(gateway.app, other.user.headers, other.job._id.toHexString());
    expect(theirs.response.status).toBe(200);
    theirs.close();

    // A stream that closes frees its place.
    held[0]!.close();
    let reopened: Stream | undefined;
    expect(
      await eventually(async () => {
        reopened = await openStream(gateway.app, user.headers, id);
        return reopened.response.status === 200;
      }),
    ).toBe(true);
    expect(await reopened!.nextState()).toBe("status:queued:0");
    // Streams that end by themselves (the job is done) free theirs too.
    await stack.gateway.jobs.markFailed(job._id, "not a video");
    expect(await everyState([held[1]!, held[2]!, reopened!])).toEqual(Array(3).fill("status:failed:0"));
    const fresh = await openMany(3, gateway.app, user.headers, id);
    expect(fresh.map((stream) => stream.response.status)).toEqual([200, 200, 200]);
    expect(await everyState(fresh)).toEqual(Array(3).fill("status:failed:0"));
    await counting.mongo.close();
  });

  test("a client that goes away over a real connection frees its place", async () => {
    const gateway = stack.gatewayWith({ MAX_STREAMS_PER_USER: "1" });
    gateway.app.listen({ port: 0, hostname: "127.0.0.1" });
    try {
      const base = `http://127.0.0.1:${gateway.app.server!.port}`;
      const { user, job } = await newUserWithJob();
      const url = `${base}/jobs/${job._id.toHexString()}/events`;
      const leaving = new AbortController();
      const first = await fetch(url, { headers: user.headers, signal: leaving.signal });
      expect(first.status).toBe(200);
      const reader = first.body!.getReader();
      await reader.read(); // the first event
      expect((await fetch(url, { headers: user.headers })).status).toBe(429);
      leaving.abort();
      let answer: Response | undefined;
      expect(
        await eventually(async () => {
          answer = await fetch(url, { headers: user.headers });
          if (answer.status !== 200) await answer.body?.cancel();
          return answer.status === 200;
        }),
      ).toBe(true);
      await answer!.body!.cancel();
    } finally {
      await gateway.app.stop(true);
    }
  });
});
