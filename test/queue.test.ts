// lib/queue.ts against the real RabbitMQ, in vhosts of its own: topology,
// confirmed publishing, explicit settlement, prefetch, dead-lettering, counted
// retries, recovery after the broker drops the connection, and a clean close.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import amqp, { type Channel, type ChannelModel } from "amqplib";
import { createLogger, type LogLevel } from "../lib/log.ts";
import {
  ATTEMPTS_HEADER,
  connectQueue,
  type Delivery,
  QUEUES,
  type Queue,
  type QueueOptions,
  QueueUnavailable,
  TOPOLOGY,
} from "../lib/queue.ts";
import { createTestVhost, type TestVhost } from "./support/rabbit.ts";

const log = createLogger("queue-test", (process.env.LOG_LEVEL as LogLevel | undefined) ?? "silent");
const ALL_QUEUES = TOPOLOGY.map((entry) => entry.queue);
let vhost: TestVhost;
let admin: ChannelModel;
let channel: Channel;
let opened: Queue[] = [];

async function open(url = vhost.url, options: QueueOptions = {}): Promise<Queue> {
  const queue = await connectQueue(url, log, options);
  opened.push(queue);
  return queue;
}
/** A plain channel for looking at the broker, one per use when a 406 is expected to close it. */
async function plainChannel(): Promise<Channel> {
  const ch = await admin.createChannel();
  ch.on("error", () => {});
  return ch;
}
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
type Truthy<T> = Exclude<T, false | 0 | "" | null | undefined>;
async function waitFor<T>(probe: () => T | Promise<T>, what: string, timeoutMs = 5000): Promise<Truthy<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value as Truthy<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}
const take = (queue: string) => channel.get(queue, { noAck: true });
const ready = async (queue: string) => (await channel.checkQueue(queue)).messageCount;
/** A promise to hold a handler open until the test lets it go. */
function gate() {
  let open!: () => void;
  const closed = new Promise<void>((resolve) => (open = resolve));
  return { closed, open: () => open() };
}

beforeAll(async () => {
  vhost = await createTestVhost();
  admin = await amqp.connect(vhost.url);
  admin.on("error", () => {});
  channel = await plainChannel();
});

beforeEach(async () => {
  for (const { queue, options } of TOPOLOGY) await channel.assertQueue(queue, options);
  for (const queue of ALL_QUEUES) await channel.purgeQueue(queue);
});

afterEach(async () => {
  await Promise.all(opened.map((queue) => queue.close()));
  opened = [];
});

afterAll(async () => {
  await admin?.close().catch(() => {});
  await vhost?.drop();
});

describe("topology", () => {
  test("declares durable `video` and `mp3`, each dead-lettering to a durable `<name>.dead`", async () => {
    for (const queue of ALL_QUEUES) await channel.deleteQueue(queue);
    await open();
    for (const name of Object.values(QUEUES)) {
      const dead = `${name}.dead`;
      const declared = {
        durable: true,
        arguments: { "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead },
      };
      expect(TOPOLOGY).toContainEqual({ queue: name, options: declared });
      // Re-declaring with the same arguments is accepted; anything else is a 406 from the broker.
      expect((await channel.assertQueue(name, declared)).queue).toBe(name);
      expect((await channel.assertQueue(dead, { durable: true })).queue).toBe(dead);
      await expect((await plainChannel()).assertQueue(name, { durable: true })).rejects.toThrow(/PRECONDITION_FAILED/);
      await expect((await plainChannel()).assertQueue(name, { ...declared, durable: false })).rejects.toThrow(
        /PRECONDITION_FAILED/,
      );
      await expect((await plainChannel()).assertQueue(dead, { durable: false })).rejects.toThrow(/PRECONDITION_FAILED/);
    }
  });
});

describe("publish and consume", () => {
  test("publish stores a persistent JSON message carrying the caller's message id", async () => {
    const queue = await open();
    await queue.publish(QUEUES.video, { jobId: "job-1" }, { messageId: "job-1" });
    const message = await waitFor(() => take(QUEUES.video), "the message");
    expect(JSON.parse(message.content.toString())).toEqual({ jobId: "job-1" });
    expect(message.properties).toMatchObject({ messageId: "job-1", contentType: "application/json", deliveryMode: 2 });
  });

  test("a published message reaches the consumer with its body, id and first-attempt info, and is acked after the handler", async () => {
    const queue = await open();
    const seen: Delivery[] = [];
    await queue.consume(QUEUES.mp3, { prefetch: 1 }, (delivery) => void seen.push(delivery));
    await queue.publish(QUEUES.mp3, { jobId: "j2", status: "done" }, { messageId: "j2" });
    await waitFor(() => seen.length === 1, "the delivery");
    expect(seen[0]).toMatchObject({
      body: { jobId: "j2", status: "done" },
      messageId: "j2",
      attempt: 1,
      maxAttempts: 5,
      redelivered: false,
    });
    await queue.close();
    expect(await ready(QUEUES.mp3)).toBe(0); // acked, so closing did not hand it back
    expect(await ready("mp3.dead")).toBe(0);
  });

  test("a message not yet acked goes to another consumer when the first one's connection closes, as a counted attempt", async () => {
    const [first, second] = [await open(), await open()];
    const held = gate();
    const firstSeen: Delivery[] = [];
    const secondSeen: Delivery[] = [];
    await first.consume(QUEUES.video, { prefetch: 1 }, async (delivery) => {
      firstSeen.push(delivery);
      await held.closed;
    });
    await first.publish(QUEUES.video, { jobId: "j3" }, { messageId: "j3" });
    await waitFor(() => firstSeen.length === 1, "the first consumer to hold it");
    await second.consume(QUEUES.video, { prefetch: 1 }, (delivery) => void secondSeen.push(delivery));
    await sleep(200);
    expect(secondSeen).toHaveLength(0); // held by the first, not duplicated
    await first.close(); // the worker dies with the message in hand
    await waitFor(() => secondSeen.length === 1, "the redelivery");
    expect(secondSeen[0]).toMatchObject({ body: { jobId: "j3" }, messageId: "j3", attempt: 2, redelivered: true });
    held.open(); // the old handler finishing late must not throw, and cannot ack on its dead channel
    await sleep(100);
    await second.close();
    expect(await ready(QUEUES.video)).toBe(0);
    expect(await ready("video.dead")).toBe(0);
  });

  test("prefetch bounds the messages a slow consumer holds at once", async () => {
    const queue = await open();
    let active = 0;
    let most = 0;
    let done = 0;
    await queue.consume(QUEUES.video, { prefetch: 2 }, async () => {
      most = Math.max(most, ++active);
      await sleep(150);
      active--;
      done++;
    });
    for (let i = 0; i < 5; i++) await queue.publish(QUEUES.video, { jobId: `p${i}` }, { messageId: `p${i}` });
    await waitFor(() => done === 5, "all five handled");
    expect(most).toBe(2);
  });

  test("stopConsuming takes no new messages but lets the one in hand finish and be acked", async () => {
    const queue = await open();
    const held = gate();
    const seen: string[] = [];
    await queue.consume(QUEUES.video, { prefetch: 5 }, async (delivery) => {
      seen.push(delivery.messageId!);
      await held.closed;
    });
    await queue.publish(QUEUES.video, { jobId: "s1" }, { messageId: "s1" });
    await waitFor(() => seen.length === 1, "the first message");
    await queue.stopConsuming();
    await queue.publish(QUEUES.video, { jobId: "s2" }, { messageId: "s2" });
    await sleep(300);
    expect(seen).toEqual(["s1"]);
    expect(queue.inFlight()).toBe(1);
    held.open();
    await waitFor(() => queue.inFlight() === 0, "the held message to be settled");
    await queue.close();
    const left = await waitFor(() => take(QUEUES.video), "the untouched message");
    expect(left.properties.messageId).toBe("s2"); // s1 was acked after stopConsuming
    expect(await take(QUEUES.video)).toBe(false);
  });
});

describe("failures and dead letters", () => {
  test("a body that is not JSON is dead-lettered without reaching the handler", async () => {
    const queue = await open();
    let calls = 0;
    await queue.consume(QUEUES.video, { prefetch: 1 }, () => void calls++);
    channel.sendToQueue(QUEUES.video, Buffer.from("{not json"), { messageId: "garbage" });
    const dead = await waitFor(() => take("video.dead"), "the dead letter");
    expect(dead.content.toString()).toBe("{not json");
    expect(dead.properties.messageId).toBe("garbage");
    expect(dead.properties.headers?.["x-death"]?.[0]).toMatchObject({ queue: "video", reason: "rejected" });
    expect(calls).toBe(0);
    expect(await ready(QUEUES.video)).toBe(0);
  });

  test("deadLetter() moves the message to `<queue>.dead` at once", async () => {
    const queue = await open();
    let calls = 0;
    let exhausted = 0;
    const options = { prefetch: 1, onExhausted: () => void exhausted++ };
    await queue.consume(QUEUES.mp3, options, (delivery) => (calls++, delivery.deadLetter("bad input")));
    await queue.publish(QUEUES.mp3, { jobId: "d1", status: "failed" }, { messageId: "d1" });
    const dead = await waitFor(() => take("mp3.dead"), "the dead letter");
    expect(JSON.parse(dead.content.toString())).toEqual({ jobId: "d1", status: "failed" });
    expect(dead.properties.messageId).toBe("d1");
    expect([calls, exhausted]).toEqual([1, 0]);
  });

  test("a handler that keeps throwing is tried maxAttempts times, then dead-lettered and reported", async () => {
    const queue = await open();
    const attempts: number[] = [];
    const reported: unknown[] = [];
    const options = {
      prefetch: 1,
      maxAttempts: 3,
      onExhausted: (body: unknown, id: string | undefined) => void reported.push({ body, id }),
    };
    await queue.consume(QUEUES.video, options, (delivery) => {
      attempts.push(delivery.attempt);
      throw new Error("store away");
    });
    await queue.publish(QUEUES.video, { jobId: "r1" }, { messageId: "r1" });
    const dead = await waitFor(() => take("video.dead"), "the dead letter");
    expect(attempts).toEqual([1, 2, 3]);
    expect(reported).toEqual([{ body: { jobId: "r1" }, id: "r1" }]);
    expect(dead.properties.messageId).toBe("r1");
    expect(dead.properties.headers?.[ATTEMPTS_HEADER]).toBe(2);
    expect(await ready(QUEUES.video)).toBe(0);
  });

  test("retry() then success acks the retried copy, leaving nothing behind", async () => {
    const queue = await open();
    const seen: [number, boolean][] = [];
    await queue.consume(QUEUES.video, { prefetch: 1 }, async (delivery) => {
      seen.push([delivery.attempt, delivery.redelivered]);
      if (delivery.attempt === 1) await delivery.retry("transient");
    });
    await queue.publish(QUEUES.video, { jobId: "r2" }, { messageId: "r2" });
    await waitFor(() => seen.length === 2, "the retry");
    await queue.close();
    expect(seen).toEqual([
      [1, false],
      [2, true],
    ]);
    expect(await ready(QUEUES.video)).toBe(0);
    expect(await ready("video.dead")).toBe(0);
  });

  test("a message handed back again and again (as by a crashing worker) is bounded too", async () => {
    const queue = await open();
    const attempts: number[] = [];
    let exhausted = 0;
    await queue.consume(
      QUEUES.video,
      { prefetch: 1, maxAttempts: 2, onExhausted: () => void exhausted++ },
      (delivery) => {
        attempts.push(delivery.attempt);
        return delivery.requeue();
      },
    );
    await queue.publish(QUEUES.video, { jobId: "c1" }, { messageId: "c1" });
    const dead = await waitFor(() => take("video.dead"), "the dead letter");
    expect(dead.properties.messageId).toBe("c1");
    expect(attempts).toEqual([1, 2]);
    expect(exhausted).toBe(1);
  });
});

describe("connection", () => {
  test("with no broker, connecting and publishing fail with QueueUnavailable in bounded time", async () => {
    const nowhere = "amqp://guest:guest@127.0.0.1:1";
    let started = Date.now();
    await expect(
      connectQueue(nowhere, log, { initialMaxRetries: 2, initialDelayMs: 10, maxDelayMs: 20 }),
    ).rejects.toBeInstanceOf(QueueUnavailable);
    expect(Date.now() - started).toBeLessThan(2000);

    const gaveUp = await open(nowhere, {
      waitForConnect: false,
      initialMaxRetries: 1,
      initialDelayMs: 10,
      maxDelayMs: 20,
    });
    started = Date.now();
    await expect(gaveUp.publish(QUEUES.video, { jobId: "x" }, { messageId: "x" })).rejects.toBeInstanceOf(
      QueueUnavailable,
    );
    await expect(gaveUp.ping()).rejects.toBeInstanceOf(QueueUnavailable);

    const stillTrying = await open(nowhere, {
      waitForConnect: false,
      initialMaxRetries: Infinity,
      initialDelayMs: 10,
      maxDelayMs: 50,
      publishTimeoutMs: 300,
    });
    await expect(stillTrying.publish(QUEUES.video, { jobId: "y" }, { messageId: "y" })).rejects.toThrow(
      /no broker connection within 300 ms/,
    );
    expect(Date.now() - started).toBeLessThan(2000);
  });

  test("after the broker drops the connection, publishing and consuming resume without the caller doing anything", async () => {
    const own = await createTestVhost();
    try {
      const queue = await open(own.url, { initialDelayMs: 50 });
      const seen: string[] = [];
      await queue.consume(QUEUES.video, { prefetch: 1 }, (delivery) => void seen.push(delivery.messageId!));
      await queue.publish(QUEUES.video, { jobId: "before" }, { messageId: "before" });
      await waitFor(() => seen.length === 1, "the first message");
      expect(await own.closeConnections()).toBe(1);
      await queue.publish(QUEUES.video, { jobId: "after" }, { messageId: "after" }); // waits for the reconnect
      await waitFor(() => seen.length === 2, "the message after the reconnect");
      expect(seen).toEqual(["before", "after"]);
      expect(await queue.ping()).toBe(true);
      expect(await own.connections()).toHaveLength(1); // the old one is gone, one new one
      await queue.close();
      await waitFor(async () => (await own.connections()).length === 0, "no connection left");
    } finally {
      await own.drop();
    }
  });

  test("close() is idempotent, leaves no connection open and refuses further use", async () => {
    const before = (await vhost.connections()).length;
    const queue = await open();
    expect(await queue.ping()).toBe(true);
    await waitFor(async () => (await vhost.connections()).length === before + 1, "the connection to show");
    await Promise.all([queue.close(), queue.close()]);
    await queue.close();
    await waitFor(async () => (await vhost.connections()).length === before, "the connection to go");
    await expect(queue.ping()).rejects.toBeInstanceOf(QueueUnavailable);
    await expect(queue.publish(QUEUES.video, { jobId: "z" }, { messageId: "z" })).rejects.toBeInstanceOf(
      QueueUnavailable,
    );
    await expect(queue.consume(QUEUES.video, { prefetch: 1 }, () => {})).rejects.toThrow(/stopped/);
  });
});
