// Shared set-up for the lib/queue.ts tests (test/queue*.test.ts): a RabbitMQ vhost of the file's own,
// the topology declared and purged before each test, and every queue a test opens closed after it.
import { afterAll, afterEach, beforeAll, beforeEach } from "bun:test";
import amqp, { type Channel, type ChannelModel } from "amqplib";
import { createLogger, type LogLevel } from "../../lib/log.ts";
import { connectQueue, type Queue, type QueueOptions, TOPOLOGY } from "../../lib/queue.ts";
import { createTestVhost, type TestVhost } from "./rabbit.ts";

export const log = createLogger("queue-test", (process.env.LOG_LEVEL as LogLevel | undefined) ?? "silent");
export const ALL_QUEUES = TOPOLOGY.map((entry) => entry.queue);

/** A logger whose JSON lines the test reads. */
export function capturedLog() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("queue-test", "info", { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { logger, lines, events: (event: string) => lines.filter((line) => line.event === event) };
}
/** A valid job id (24 hex digits, as lib/messages.ts asks) made from a small number. */
export const jobId = (n: number) => n.toString(16).padStart(24, "0");
export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
type Truthy<T> = Exclude<T, false | 0 | "" | null | undefined>;
export async function waitFor<T>(probe: () => T | Promise<T>, what: string, timeoutMs = 5000): Promise<Truthy<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value as Truthy<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}
/** A promise to hold a handler open until the test lets it go. */
export function gate() {
  let open!: () => void;
  const closed = new Promise<void>((resolve) => (open = resolve));
  return { closed, open: () => open() };
}

/** Registers the hooks in the calling test file; `vhost` and `channel` are set once its beforeAll has run. */
export function useQueueBroker() {
  let vhost: TestVhost;
  let admin: ChannelModel;
  let channel: Channel;
  let opened: Queue[] = [];

  async function open(url = vhost.url, options: QueueOptions = {}, logger = log): Promise<Queue> {
    const queue = await connectQueue(url, logger, options);
    opened.push(queue);
    return queue;
  }
  /** A plain channel for looking at the broker, one per use when a 406 is expected to close it. */
  async function plainChannel(): Promise<Channel> {
    const ch = await admin.createChannel();
    ch.on("error", () => {});
    return ch;
  }
  const take = (queue: string) => channel.get(queue, { noAck: true });
  const ready = async (queue: string) => (await channel.checkQueue(queue)).messageCount;

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

  return {
    get vhost() {
      return vhost;
    },
    /** A plain channel for looking at the broker. */
    get channel() {
      return channel;
    },
    open,
    plainChannel,
    take,
    ready,
  };
}
