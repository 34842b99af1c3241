// The message broker for every service: one AMQP connection per process, the shared
// topology, confirmed publishing, and consumers with explicit settlement (lib/delivery.ts).
// Reconnecting is amqplib's own recovery (`connect(url, { recovery })`): its `setup` hook runs
// after every (re)connect, before the connection is handed out, and re-declares the topology,
// re-opens the publisher channel and re-attaches every consumer, so callers never handle a
// broker restart. Every delivery is checked against its queue's schema (lib/messages.ts); a
// malformed one is dead-lettered with one `message.malformed` line. Delivery is at least once:
// consumers must be idempotent.
//
// Decision (issue 14): quorum queues, and the broker counts the attempts. Classic queues count
// no redeliveries, so this module used to re-publish counted copies; a quorum queue counts
// each return of a message in `x-delivery-count` (absent on a first delivery), and it is the
// queue type a RabbitMQ cluster replicates. attempt = that count + 1. Measured on 3.10.8 (the
// 4.x docs agree): a nack or reject with requeue and a closed channel or connection each count
// one (a dead worker costs every message it held one attempt); a returned message goes back to
// the head of the queue, so a retry comes again at once (a consumer that wants a pause waits
// before it retries); a return that takes the count past `x-delivery-limit` dead-letters it.
// - The consumer decides: past its maxAttempts (at most MAX_ATTEMPTS, 20) it calls onExhausted,
//   then dead-letters. DELIVERY_LIMIT (30) is only the broker's backstop: it leaves every
//   consumer the look that gives up properly after a last attempt whose holder died, plus ten
//   or more hand-backs while onExhausted cannot record. Past it a message goes to `<queue>.dead`
//   (x-death reason `delivery_limit`) with nothing recorded.
// - A retry is a reject with requeue, a hand-back (requeue(), as on SIGTERM) a nack with
//   requeue. Up to RabbitMQ 4.2 both count: a hand-back costs an attempt, as it did with the
//   counted copies (the converter keeps its own job count apart); from 4.3 only a reject counts,
//   so hand-backs become free while retries stay bounded.
// - A redelivery arrives at once, often while its earlier copy is still in hand on a channel
//   that died: copies of one message id are handled one at a time per process (oneAtATime).
// - Dead-lettering is at-least-once: the source queue keeps a dead letter until `<queue>.dead`
//   confirms it (this needs `x-overflow: reject-publish`, which refuses nothing without a limit).
//
// Upgrading from the classic queues: a broker that holds `video`, `mp3` or their `.dead` as
// classic queues refuses this declaration (406 PRECONDITION_FAILED, logged as
// `broker.topology_refused`). Delete those four queues once, after the services drained them.
import amqp, {
  type Channel,
  type ChannelModel,
  type ConfirmChannel,
  type Options,
  type RecoveringChannelModel,
} from "amqplib";
import {
  type ConsumeOptions,
  DEFAULT_MAX_ATTEMPTS,
  type Delivery,
  type Consumer as DeliveryConsumer,
  deliver,
  type Handler,
  MAX_ATTEMPTS,
} from "./delivery.ts";
import type { Logger } from "./log.ts";
import { type MessageOf, QUEUES, type QueueName } from "./messages.ts";

export { type ConsumeOptions, type Delivery, type Handler, MAX_ATTEMPTS, QUEUES, type QueueName };

/** Returns after which the broker dead-letters a message itself (`x-delivery-limit`): a backstop. */
export const DELIVERY_LIMIT = 30;

/** The one declaration of every queue; every user asserts exactly this (any mismatch is a 406 from the broker). */
export const TOPOLOGY: readonly { queue: string; options: Options.AssertQueue }[] = Object.values(QUEUES).flatMap(
  (name) => [
    { queue: `${name}.dead`, options: { durable: true, arguments: { "x-queue-type": "quorum" } } },
    {
      queue: name,
      options: {
        durable: true,
        arguments: {
          "x-queue-type": "quorum",
          "x-delivery-limit": DELIVERY_LIMIT,
          "x-dead-letter-exchange": "",
          "x-dead-letter-routing-key": `${name}.dead`,
          "x-dead-letter-strategy": "at-least-once",
          "x-overflow": "reject-publish",
        },
      },
    },
  ],
);

/** The broker cannot take or confirm a message right now (the gateway answers 503). */
export class QueueUnavailable extends Error {
  override name = "QueueUnavailable";
}

export interface QueueOptions {
  waitForConnect?: boolean; // resolve only once connected (true); else connect in the background
  initialMaxRetries?: number; // retries of the first connection before giving up (10, about 30 s)
  maxRetries?: number; // retries after a connection loss (forever)
  initialDelayMs?: number; // first reconnect delay (100)
  maxDelayMs?: number; // longest reconnect delay (5000)
  publishTimeoutMs?: number; // all publish() may take: waiting for a connection plus the confirm (5000)
  exhaustedRetryMs?: number; // pause before a message whose onExhausted failed is handed back (2000)
}

/**
 * How the services connect: without waiting, and trying until the broker answers however long
 * it takes to start (amqplib's backoff, at most `maxDelayMs` apart). Publishing meanwhile is a
 * QueueUnavailable (503), consumers attach once connected, readiness says "unavailable".
 */
export const CONNECT_IN_BACKGROUND: QueueOptions = { waitForConnect: false, initialMaxRetries: Infinity };

export interface Queue {
  /** Resolves once the broker confirmed the message; otherwise rejects with QueueUnavailable. */
  publish<Q extends QueueName>(
    queue: Q,
    body: MessageOf<Q>,
    options: { messageId: string; headers?: Record<string, unknown> },
  ): Promise<void>;
  /** Hands each message that matches the queue's schema to `handler`; a malformed one is dead-lettered. */
  consume<Q extends QueueName>(
    queue: Q,
    options: ConsumeOptions<MessageOf<Q>>,
    handler: Handler<MessageOf<Q>>,
  ): Promise<void>;
  /** Cancels every consumer; channels stay open so the messages in hand can still be settled. */
  stopConsuming(): Promise<void>;
  /** Messages received whose handling and settlement are not finished. */
  inFlight(): number;
  /** Readiness: true with an open connection and channel, else throws QueueUnavailable. */
  ping(): Promise<true>;
  /** Cancels consumers, closes channels and the connection; idempotent. */
  close(): Promise<void>;
}

interface Conn {
  model: ChannelModel;
  alive: boolean;
  publisher?: ConfirmChannel;
}
interface Consumer extends DeliveryConsumer {
  channel?: Channel;
  tag?: string;
}

export function connectQueue(url: string, log: Logger, options: QueueOptions = {}): Promise<Queue> {
  return QueueClient.open(url, log, options);
}

/**
 * One process's broker client: the state of its connection, shared by amqplib's recovery
 * `setup` hook (which rebuilds channels and consumers), publishing and the consumers.
 */
class QueueClient implements Queue {
  private readonly consumers: Consumer[] = [];
  private current: Conn | null = null; // a connection whose setup has finished
  private failure: Error | null = null; // recovery gave up for good
  private closed = false;
  private consuming = true;
  private closing: Promise<void> | undefined;
  private held = 0; // messages received whose handling and settlement are not finished
  private readonly waiters: (() => void)[] = []; // publishers waiting for a connection
  private readonly handling = new Map<string, Promise<void>>(); // see oneAtATime
  private connection!: RecoveringChannelModel; // set in open(), before the first attempt

  private constructor(
    private readonly log: Logger,
    private readonly publishTimeoutMs: number,
    private readonly exhaustedRetryMs: number,
  ) {}

  static async open(url: string, log: Logger, options: QueueOptions): Promise<QueueClient> {
    const client = new QueueClient(log, options.publishTimeoutMs ?? 5000, options.exhaustedRetryMs ?? 2000);
    const {
      initialMaxRetries = 10,
      maxRetries = Infinity,
      initialDelayMs: initialDelay = 100,
      maxDelayMs: maxDelay = 5000,
    } = options;
    // One parameter: amqplib awaits the promise (with two it would pass a callback).
    const setup = (model: ChannelModel) => client.setup(model);
    client.connection = await amqp.connect(url, {
      clientProperties: { connection_name: String(log.bindings().service ?? "m3dio") },
      // waitForConnect false: the listeners below go on before the first attempt.
      recovery: { waitForConnect: false, initialMaxRetries, maxRetries, initialDelay, maxDelay, setup },
    });
    logConnection(client.connection, log, url, (err) => {
      client.failure = err;
      client.wake();
    });
    if (options.waitForConnect ?? true) {
      await client.connection.waitForConnect().catch(async (err: Error) => {
        await client.connection.close();
        throw new QueueUnavailable(`could not connect to the broker: ${err.message}`, { cause: err });
      });
    }
    return client;
  }

  publish<Q extends QueueName>(
    queue: Q,
    body: MessageOf<Q>,
    { messageId, headers }: { messageId: string; headers?: Record<string, unknown> },
  ): Promise<void> {
    return this.publishRaw(queue, Buffer.from(JSON.stringify(body)), {
      messageId,
      headers,
      contentType: "application/json",
      timestamp: Math.floor(Date.now() / 1000),
    });
  }

  async consume<Q extends QueueName>(
    queue: Q,
    options: ConsumeOptions<MessageOf<Q>>,
    handler: Handler<MessageOf<Q>>,
  ): Promise<void> {
    if (this.closed || !this.consuming) throw new Error("this queue client has stopped consuming");
    const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1 || maxAttempts > MAX_ATTEMPTS)
      throw new RangeError(`maxAttempts must be 1 to ${MAX_ATTEMPTS} (the broker's limit is ${DELIVERY_LIMIT})`);
    const consumer = { queue, options, handler } as Consumer;
    this.consumers.push(consumer);
    // Not connected: the next setup attaches it. A failure here closes the connection and recovery retries.
    if (this.current)
      await this.attach(this.current, consumer).catch((err) =>
        this.log.warn({ event: "broker.attach_failed", err, queue }, "could not attach a consumer yet"),
      );
  }

  async stopConsuming(): Promise<void> {
    this.consuming = false;
    await Promise.all(
      this.consumers.map(({ channel, tag }) => (channel && tag ? channel.cancel(tag).catch(() => {}) : undefined)),
    );
  }

  inFlight(): number {
    return this.held;
  }

  async ping(): Promise<true> {
    if (!this.current?.alive) throw this.unavailable();
    return true;
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown() {
    this.closed = true; // first, so channels closing now do not trigger a restart
    await this.stopConsuming();
    this.current = null;
    this.wake();
    await this.connection.close();
  }

  /** Wakes the publishers waiting for a connection: one came, or none will. */
  private wake() {
    for (const resolve of this.waiters.splice(0)) resolve();
  }

  private unavailable() {
    return new QueueUnavailable(
      this.failure
        ? `broker unreachable: ${this.failure.message}`
        : this.closed
          ? "queue client closed"
          : "not connected to the broker",
    );
  }

  /** A channel lost while its connection lives (a 406, a consumer cancelled by the broker) leaves us half-working: start over. */
  private restart(conn: Conn, why: string) {
    setImmediate(() => {
      // the connection's own close event comes right after its channels'
      if (this.closed || !conn.alive) return;
      this.log.error({ event: "broker.channel_lost", why }, "broker channel lost; reconnecting");
      conn.model.close().catch(() => {});
    });
  }

  private watch(conn: Conn, channel: Channel, what: string) {
    channel.on("error", (err: Error) =>
      this.log.warn({ event: "broker.channel_error", err, channel: what }, "broker channel error"),
    );
    channel.on("close", () => this.restart(conn, `${what} channel closed`));
  }

  /** amqplib's recovery hook: runs after every (re)connect, before the connection is handed out. */
  private async setup(model: ChannelModel) {
    const conn: Conn = { model, alive: true };
    model.on("close", () => {
      conn.alive = false;
      if (this.current === conn) this.current = null;
    });
    model.on("error", () => {}); // reported through the recovering connection
    conn.publisher = await model.createConfirmChannel();
    this.watch(conn, conn.publisher, "publisher");
    for (const { queue, options } of TOPOLOGY) await this.declare(conn.publisher, queue, options);
    if (this.consuming) for (const consumer of this.consumers) await this.attach(conn, consumer);
    this.current = conn;
    this.wake();
  }

  private async declare(channel: Channel, queue: string, options: Options.AssertQueue) {
    await channel.assertQueue(queue, options).catch((err: Error & { code?: number }) => {
      if (err.code === 406)
        this.log.error(
          { event: "broker.topology_refused", err, queue },
          "the broker holds this queue with other arguments (a classic queue from before quorum queues?): delete it once",
        );
      throw err;
    });
  }

  private async attach(conn: Conn, consumer: Consumer) {
    const channel = await conn.model.createChannel();
    this.watch(conn, channel, `consumer ${consumer.queue}`);
    await channel.prefetch(consumer.options.prefetch);
    const { consumerTag } = await channel.consume(consumer.queue, (msg) => {
      if (!msg) return this.restart(conn, `consumer of ${consumer.queue} cancelled by the broker`);
      this.held++;
      this.oneAtATime(`${consumer.queue} ${msg.properties.messageId ?? ""}`, !msg.properties.messageId, () =>
        deliver(this.log, this.exhaustedRetryMs, consumer, channel, msg).catch((err) =>
          this.log.error({ event: "message.handling_failed", err, queue: consumer.queue }, "message handling failed"),
        ),
      ).finally(() => this.held--);
    });
    Object.assign(consumer, { channel, tag: consumerTag });
    if (!this.consuming) await channel.cancel(consumerTag).catch(() => {}); // stopConsuming() ran meanwhile
  }

  /**
   * Copies of one message (one queue, one message id) are handled one at a time here. A broker
   * redelivery reaches the head of the queue at once, often while its earlier copy is still in
   * hand on a channel that died; waiting for that copy lets the handler's own check see what it
   * did (a job finished, an email sent) instead of doing it a second time alongside.
   */
  private oneAtATime(key: string, alone: boolean, run: () => Promise<void>): Promise<void> {
    if (alone) return run();
    const done = (this.handling.get(key) ?? Promise.resolve()).then(run);
    this.handling.set(key, done);
    return done.finally(() => this.handling.get(key) === done && this.handling.delete(key));
  }

  private async publishRaw(queue: string, content: Buffer, props: Options.Publish) {
    const deadline = Date.now() + this.publishTimeoutMs;
    while (!this.current?.publisher) await this.reconnected(deadline);
    await this.confirmed(this.current.publisher, queue, content, props, deadline);
  }

  /** Waits for a reconnect in progress (or a close, or recovery giving up), within the deadline. */
  private async reconnected(deadline: number) {
    const left = deadline - Date.now();
    if (this.closed || this.failure) throw this.unavailable();
    if (left <= 0) throw new QueueUnavailable(`no broker connection within ${this.publishTimeoutMs} ms`);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, left);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Sends one persistent message and resolves once the broker confirmed it, before the deadline. */
  private confirmed(channel: ConfirmChannel, queue: string, content: Buffer, props: Options.Publish, deadline: number) {
    return new Promise<void>((resolve, reject) => {
      const fail = (why: string, cause?: unknown) => {
        clearTimeout(timer);
        reject(new QueueUnavailable(why, { cause }));
      };
      const timer = setTimeout(
        () => fail(`no confirm from the broker within ${this.publishTimeoutMs} ms`),
        Math.max(1, deadline - Date.now()),
      );
      try {
        channel.sendToQueue(queue, content, { ...props, persistent: true }, (err) => {
          if (err) return fail(`the broker did not take the message: ${err?.message ?? err}`, err);
          clearTimeout(timer);
          resolve();
        });
      } catch (err) {
        fail(`the broker channel is closed: ${(err as Error).message}`, err);
      }
    });
  }
}

/** One line per connection event; `gaveUp` hears when recovery stops for good. */
function logConnection(connection: RecoveringChannelModel, log: Logger, url: string, gaveUp: (err: Error) => void) {
  const { host, pathname } = new URL(url);
  const broker = `${host}${pathname || "/"}`; // never the password
  let connects = 0;
  connection.on("connect", () =>
    connects++
      ? log.info({ event: "broker.reconnected", broker }, "reconnected to the broker")
      : log.info({ event: "broker.connected", broker }, "connected to the broker"),
  );
  connection.on("disconnect", (err: Error) =>
    log.warn({ event: "broker.disconnected", err, broker }, "lost the broker connection"),
  );
  connection.on("reconnect-scheduled", ({ attempt, delay, error }) =>
    log.warn(
      { event: "broker.reconnecting", attempt, delayMs: delay, err: error, broker },
      "reconnecting to the broker",
    ),
  );
  connection.on("reconnect-failed", (err: Error) => {
    gaveUp(err);
    log.error({ event: "broker.gave_up", err, broker }, "gave up connecting to the broker");
  });
  connection.on("error", (err: Error) => log.warn({ event: "broker.error", err }, "broker connection error"));
  connection.on("blocked", (reason: string) =>
    log.warn({ event: "broker.blocked", reason }, "the broker blocks publishing"),
  );
  connection.on("unblocked", () => log.info({ event: "broker.unblocked" }, "the broker takes messages again"));
  connection.on("handler-error", (err: Error, listener: string) =>
    log.error({ event: "broker.listener_failed", err, listener }, "broker event listener failed"),
  );
}
