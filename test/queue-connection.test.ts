// lib/queue.ts against the real RabbitMQ, in vhosts of its own: the quorum-queue topology,
// failing in bounded time with no broker, recovery after the broker drops the connection, and a
// clean close. Publishing, consuming and retries are in queue.test.ts.
import { describe, expect, test } from "bun:test";
import amqp from "amqplib";
import { connectQueue, DELIVERY_LIMIT, QUEUES, QueueUnavailable, TOPOLOGY } from "../lib/queue.ts";
import { ALL_QUEUES, capturedLog, gate, jobId, log, sleep, useQueueBroker, waitFor } from "./support/queue.ts";
import { createTestVhost } from "./support/rabbit.ts";

const broker = useQueueBroker();
const { open, plainChannel } = broker;

describe("topology", () => {
  test("declares durable quorum queues `video` and `mp3`, each dead-lettering to a durable quorum `<name>.dead`", async () => {
    for (const queue of ALL_QUEUES) await broker.channel.deleteQueue(queue);
    await open();
    for (const name of Object.values(QUEUES)) {
      const dead = `${name}.dead`;
      const declared = {
        durable: true,
        arguments: {
          "x-queue-type": "quorum",
          "x-delivery-limit": DELIVERY_LIMIT,
          "x-dead-letter-exchange": "",
          "x-dead-letter-routing-key": dead,
          "x-dead-letter-strategy": "at-least-once",
          "x-overflow": "reject-publish",
        },
      };
      const deadDeclared = { durable: true, arguments: { "x-queue-type": "quorum" } };
      expect(TOPOLOGY).toContainEqual({ queue: name, options: declared });
      expect(TOPOLOGY).toContainEqual({ queue: dead, options: deadDeclared });
      // Re-declaring with the same arguments is accepted; anything else is a 406 from the broker,
      // as a broker still holding the old classic queues answers this declaration.
      expect((await broker.channel.assertQueue(name, declared)).queue).toBe(name);
      expect((await broker.channel.assertQueue(dead, deadDeclared)).queue).toBe(dead);
      const classic = { durable: true, arguments: { "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead } };
      await expect((await plainChannel()).assertQueue(name, classic)).rejects.toThrow(/PRECONDITION_FAILED/);
      await expect((await plainChannel()).assertQueue(dead, { durable: true })).rejects.toThrow(/PRECONDITION_FAILED/);
      const otherLimit = { ...declared, arguments: { ...declared.arguments, "x-delivery-limit": 5 } };
      await expect((await plainChannel()).assertQueue(name, otherLimit)).rejects.toThrow(/PRECONDITION_FAILED/);
    }
  });

  test("a broker holding a queue with other arguments is refused with a log line that says what to do", async () => {
    const own = await createTestVhost();
    try {
      const ownAdmin = await amqp.connect(own.url);
      await (await ownAdmin.createChannel()).assertQueue(QUEUES.video, { durable: true }); // as before quorum queues
      await ownAdmin.close();
      const { logger, events } = capturedLog();
      await expect(connectQueue(own.url, logger, { initialMaxRetries: 0 })).rejects.toBeInstanceOf(QueueUnavailable);
      expect(events("broker.topology_refused")[0]).toMatchObject({ queue: QUEUES.video, level: "error" });
    } finally {
      await own.drop();
    }
  });
});

describe("connection", () => {
  test("with no broker, connecting and publishing fail with QueueUnavailable in bounded time", async () => {
    const nowhere = "amqp://guest:guest@127.0.0.1:1";
    let started = Date.now();
    await expect(
      connectQueue(nowhere, log, { initialMaxRetries: 2, initialDelayMs: 10, maxDelayMs: 20 }),
    ).rejects.toBeInstanceOf(QueueUnavailable);
    expect(Date.now() - started).toBeLessThan(15_000); // gave up rather than hanging (a generous bound: the machine may be busy)

    const gaveUp = await open(nowhere, {
      waitForConnect: false,
      initialMaxRetries: 1,
      initialDelayMs: 10,
      maxDelayMs: 20,
    });
    started = Date.now();
    await expect(gaveUp.publish(QUEUES.video, { jobId: jobId(90) }, { messageId: "x" })).rejects.toBeInstanceOf(
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
    await expect(stillTrying.publish(QUEUES.video, { jobId: jobId(91) }, { messageId: "y" })).rejects.toThrow(
      /no broker connection within 300 ms/,
    );
    expect(Date.now() - started).toBeLessThan(15_000); // gave up rather than hanging (a generous bound: the machine may be busy)
  });

  test("after the broker drops the connection, publishing and consuming resume without the caller doing anything", async () => {
    const own = await createTestVhost();
    try {
      const queue = await open(own.url, { initialDelayMs: 50 });
      const seen: string[] = [];
      await queue.consume(QUEUES.video, { prefetch: 1 }, (delivery) => void seen.push(delivery.messageId!));
      await queue.publish(QUEUES.video, { jobId: jobId(92) }, { messageId: "before" });
      await waitFor(() => seen.length === 1, "the first message");
      expect(await own.closeConnections()).toBe(1);
      await queue.publish(QUEUES.video, { jobId: jobId(93) }, { messageId: "after" }); // waits for the reconnect
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

  test("a redelivery waits while its earlier copy is still in hand after a reconnect, then sees what it did", async () => {
    const own = await createTestVhost();
    try {
      const queue = await open(own.url, { initialDelayMs: 50 });
      const held = gate();
      const steps: string[] = [];
      await queue.consume(QUEUES.video, { prefetch: 1 }, async (delivery) => {
        steps.push(`start ${delivery.attempt}`);
        if (delivery.attempt === 1) await held.closed; // still working when its channel dies
        steps.push(`end ${delivery.attempt}`);
      });
      await queue.publish(QUEUES.video, { jobId: jobId(95) }, { messageId: "same" });
      await waitFor(() => steps.length === 1, "the first copy in hand");
      expect(await own.closeConnections()).toBe(1); // the broker takes it back and redelivers it
      await waitFor(async () => (await own.connections()).length === 1, "the reconnect");
      await sleep(300);
      expect(steps).toEqual(["start 1"]); // the redelivered copy waits for the first
      held.open();
      await waitFor(() => steps.length === 4, "both copies handled");
      expect(steps).toEqual(["start 1", "end 1", "start 2", "end 2"]);
      await queue.close();
    } finally {
      await own.drop();
    }
  });

  test("close() is idempotent, leaves no connection open and refuses further use", async () => {
    const before = (await broker.vhost.connections()).length;
    const queue = await open();
    expect(await queue.ping()).toBe(true);
    await waitFor(async () => (await broker.vhost.connections()).length === before + 1, "the connection to show");
    await Promise.all([queue.close(), queue.close()]);
    await queue.close();
    await waitFor(async () => (await broker.vhost.connections()).length === before, "the connection to go");
    await expect(queue.ping()).rejects.toBeInstanceOf(QueueUnavailable);
    await expect(queue.publish(QUEUES.video, { jobId: jobId(94) }, { messageId: "z" })).rejects.toBeInstanceOf(
      QueueUnavailable,
    );
    await expect(queue.consume(QUEUES.video, { prefetch: 1 }, () => {})).rejects.toThrow(/stopped/);
  });
});
