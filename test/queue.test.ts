// lib/queue.ts against the real RabbitMQ, in a vhost of its own: confirmed publishing, explicit
// settlement, prefetch, dead-lettering and attempts counted by the broker. Connection loss, the
// topology and a clean close are in queue-connection.test.ts.
import { describe, expect, test } from "bun:test";
import { DELIVERY_LIMIT, type Delivery, MAX_ATTEMPTS, QUEUES } from "../lib/queue.ts";
import { capturedLog, gate, jobId, sleep, useQueueBroker, waitFor } from "./support/queue.ts";

const broker = useQueueBroker();
const { open, plainChannel, take, ready } = broker;

describe("publish and consume", () => {
  test("publish stores a persistent JSON message carrying the caller's message id", async () => {
    const queue = await open();
    await queue.publish(QUEUES.video, { jobId: jobId(1) }, { messageId: "job-1" });
    const message = await waitFor(() => take(QUEUES.video), "the message");
    expect(JSON.parse(message.content.toString())).toEqual({ jobId: jobId(1) });
    expect(message.properties).toMatchObject({ messageId: "job-1", contentType: "application/json", deliveryMode: 2 });
  });

  test("a published message reaches the consumer with its body, id and first-attempt info, and is acked after the handler", async () => {
    const queue = await open();
    const seen: Delivery[] = [];
    await queue.consume(QUEUES.mp3, { prefetch: 1 }, (delivery) => void seen.push(delivery));
    await queue.publish(QUEUES.mp3, { jobId: jobId(2), status: "done" }, { messageId: "j2" });
    await waitFor(() => seen.length === 1, "the delivery");
    expect(seen[0]).toMatchObject({
      body: { jobId: jobId(2), status: "done" },
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
    await first.publish(QUEUES.video, { jobId: jobId(3) }, { messageId: "j3" });
    await waitFor(() => firstSeen.length === 1, "the first consumer to hold it");
    await second.consume(QUEUES.video, { prefetch: 1 }, (delivery) => void secondSeen.push(delivery));
    await sleep(200);
    expect(secondSeen).toHaveLength(0); // held by the first, not duplicated
    await first.close(); // the worker dies with the message in hand
    await waitFor(() => secondSeen.length === 1, "the redelivery");
    expect(secondSeen[0]).toMatchObject({ body: { jobId: jobId(3) }, messageId: "j3", attempt: 2, redelivered: true });
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
    for (let i = 0; i < 5; i++) await queue.publish(QUEUES.video, { jobId: jobId(10 + i) }, { messageId: `p${i}` });
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
    await queue.publish(QUEUES.video, { jobId: jobId(21) }, { messageId: "s1" });
    await waitFor(() => seen.length === 1, "the first message");
    await queue.stopConsuming();
    await queue.publish(QUEUES.video, { jobId: jobId(22) }, { messageId: "s2" });
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
  test("a malformed message is dead-lettered with one `message.malformed` line, without reaching the handler", async () => {
    const { logger, lines, events } = capturedLog();
    const queue = await open(broker.vhost.url, {}, logger);
    let calls = 0;
    await queue.consume(QUEUES.video, { prefetch: 1 }, () => void calls++);
    broker.channel.sendToQueue(QUEUES.video, Buffer.from("{not json"), { messageId: "garbage" });
    broker.channel.sendToQueue(QUEUES.video, Buffer.from(JSON.stringify({ jobId: "job-1" })), { messageId: "bad-id" });
    const first = await waitFor(() => take("video.dead"), "the first dead letter");
    const second = await waitFor(() => take("video.dead"), "the second dead letter");
    expect(first.content.toString()).toBe("{not json");
    expect(first.properties.messageId).toBe("garbage");
    expect(first.properties.headers?.["x-death"]?.[0]).toMatchObject({ queue: "video", reason: "rejected" });
    expect(second.properties.messageId).toBe("bad-id");
    expect(calls).toBe(0);
    expect(await ready(QUEUES.video)).toBe(0);
    expect(events("message.malformed")).toEqual([
      expect.objectContaining({ level: "error", queue: "video", messageId: "garbage", problem: "not JSON" }),
      expect.objectContaining({ level: "error", queue: "video", messageId: "bad-id", field: "/jobId" }),
    ]);
    // One line each: the malformed line is all that is said about them.
    expect(lines.filter((line) => line.messageId === "garbage" || line.messageId === "bad-id")).toHaveLength(2);
  });

  test("deadLetter() moves the message to `<queue>.dead` at once", async () => {
    const queue = await open();
    let calls = 0;
    let exhausted = 0;
    const options = { prefetch: 1, onExhausted: () => void exhausted++ };
    await queue.consume(QUEUES.mp3, options, (delivery) => {
      calls++;
      return delivery.deadLetter("bad input");
    });
    await queue.publish(QUEUES.mp3, { jobId: jobId(31), status: "failed" }, { messageId: "d1" });
    const dead = await waitFor(() => take("mp3.dead"), "the dead letter");
    expect(JSON.parse(dead.content.toString())).toEqual({ jobId: jobId(31), status: "failed" });
    expect(dead.properties.messageId).toBe("d1");
    expect([calls, exhausted]).toEqual([1, 0]);
  });

  test("a handler that keeps throwing is tried maxAttempts times, then dead-lettered and reported", async () => {
    const { logger, events } = capturedLog();
    const queue = await open(broker.vhost.url, {}, logger);
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
    await queue.publish(QUEUES.video, { jobId: jobId(41) }, { messageId: "r1" });
    const dead = await waitFor(() => take("video.dead"), "the dead letter");
    expect(attempts).toEqual([1, 2, 3]);
    expect(reported).toEqual([{ body: { jobId: jobId(41) }, id: "r1" }]);
    expect(dead.properties.messageId).toBe("r1");
    // dead-lettered by the consumer on its last attempt, not by the broker's limit
    expect(dead.properties.headers?.["x-death"]?.[0]).toMatchObject({ queue: "video", reason: "rejected" });
    expect(await ready(QUEUES.video)).toBe(0);
    expect(events("message.retry").map((line) => line.attempt)).toEqual([1, 2]);
    expect(events("message.exhausted")).toEqual([expect.objectContaining({ attempt: 3, messageId: "r1" })]);
  });

  test("retry() then success acks the retried message, leaving nothing behind", async () => {
    const queue = await open();
    const seen: [number, boolean][] = [];
    await queue.consume(QUEUES.video, { prefetch: 1 }, async (delivery) => {
      seen.push([delivery.attempt, delivery.redelivered]);
      if (delivery.attempt === 1) await delivery.retry("transient");
    });
    await queue.publish(QUEUES.video, { jobId: jobId(42) }, { messageId: "r2" });
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
    await queue.publish(QUEUES.video, { jobId: jobId(43) }, { messageId: "c1" });
    const dead = await waitFor(() => take("video.dead"), "the dead letter");
    expect(dead.properties.messageId).toBe("c1");
    expect(attempts).toEqual([1, 2]);
    expect(exhausted).toBe(1);
  });

  test("when onExhausted fails, the message is handed back and the failure recorded when it returns", async () => {
    const { logger, events } = capturedLog();
    const queue = await open(broker.vhost.url, { exhaustedRetryMs: 50 }, logger);
    const attempts: number[] = [];
    let records = 0;
    const onExhausted = () => {
      if (++records === 1) throw new Error("the store is away");
    };
    await queue.consume(QUEUES.video, { prefetch: 1, maxAttempts: 2, onExhausted }, (delivery) => {
      attempts.push(delivery.attempt);
      throw new Error("always failing");
    });
    await queue.publish(QUEUES.video, { jobId: jobId(44) }, { messageId: "e1" });
    const dead = await waitFor(() => take("video.dead"), "the dead letter");
    expect(dead.properties.messageId).toBe("e1");
    expect(attempts).toEqual([1, 2]); // the handler is not run again once the attempts are used up
    expect(records).toBe(2);
    expect(events("message.exhausted_failed")).toHaveLength(1);
    expect(events("message.exhausted").map((line) => line.attempt)).toEqual([2, 3]);
    await sleep(100);
    expect(await take("video.dead")).toBe(false); // dead-lettered once
    expect(await ready(QUEUES.video)).toBe(0);
  });

  test("the broker counts: no count on a first delivery, whatever its publisher set", async () => {
    const queue = await open();
    const seen: Delivery[] = [];
    await queue.consume(QUEUES.video, { prefetch: 1 }, (delivery) => void seen.push(delivery));
    await queue.publish(
      QUEUES.video,
      { jobId: jobId(45) },
      { messageId: "h1", headers: { "x-delivery-count": 7, "x-attempts": 4 } },
    );
    await waitFor(() => seen.length === 1, "the delivery");
    expect(seen[0]).toMatchObject({ attempt: 1, redelivered: false });
  });

  test(`the broker's own limit backstops every consumer: a message returned ${DELIVERY_LIMIT} times is dead-lettered`, async () => {
    expect(DELIVERY_LIMIT).toBeGreaterThan(MAX_ATTEMPTS); // a consumer decides first, always
    await open(); // the topology
    const returner = await plainChannel();
    await returner.prefetch(1);
    const counts: unknown[] = [];
    await returner.consume(QUEUES.video, (message) => {
      if (!message) return;
      counts.push(message.properties.headers?.["x-delivery-count"]);
      returner.nack(message, false, true);
    });
    broker.channel.sendToQueue(QUEUES.video, Buffer.from(JSON.stringify({ jobId: jobId(46) })), { messageId: "loop" });
    const dead = await waitFor(() => take("video.dead"), "the dead letter", 15_000);
    expect(dead.properties.messageId).toBe("loop");
    expect(dead.properties.headers?.["x-death"]?.[0]).toMatchObject({ queue: "video", reason: "delivery_limit" });
    // delivered DELIVERY_LIMIT + 1 times: first without a count, then counted 1, 2, ... up to the limit
    expect(counts).toEqual([undefined, ...Array.from({ length: DELIVERY_LIMIT }, (_, i) => i + 1)]);
    await returner.close();
  });

  test("consume() refuses more attempts than the broker's limit leaves room for", async () => {
    const queue = await open();
    await expect(queue.consume(QUEUES.video, { prefetch: 1, maxAttempts: MAX_ATTEMPTS + 1 }, () => {})).rejects.toThrow(
      RangeError,
    );
  });
});
