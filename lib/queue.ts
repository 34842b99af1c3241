// The message broker for every service: one AMQP connection per process, the
// shared topology, confirmed publishing and consuming with explicit settlement.
// Reconnecting is amqplib's own recovery (`connect(url, { recovery })`): its
// `setup` hook runs after every (re)connect, before the connection is handed
// out, and re-declares the topology, re-opens the publisher channel and
// re-attaches every consumer, so callers never handle a broker restart.
//
// Retries are counted in an `x-attempts` header we set: classic queues do not
// count redeliveries (only quorum queues have `x-delivery-count`) and `x-death`
// only counts dead-letterings. A retry re-publishes a copy with `x-attempts` + 1
// (confirmed), then acks the original. A broker redelivery (the holder died or
// handed it back) becomes such a counted copy before the handler sees it again,
// so even a message that kills its worker is tried a bounded number of times.
// Past `maxAttempts` it is rejected without requeue and dead-letters to
// `<queue>.dead`. Delivery is at least once: consumers must be idempotent.
import amqp, { type Channel, type ChannelModel, type ConfirmChannel, type ConsumeMessage, type Options } from "amqplib";
import { Value } from "@sinclair/typebox/value";
import type { Logger } from "./log.ts";
import { MESSAGES, type MessageOf, QUEUES, type QueueName } from "./messages.ts";

export { QUEUES, type QueueName };
export const ATTEMPTS_HEADER = "x-attempts";

/** The one declaration of every queue; every user asserts exactly this (any mismatch is a 406 from the broker). */
export const TOPOLOGY: readonly { queue: string; options: Options.AssertQueue }[] = Object.values(QUEUES).flatMap(
  (name) => [
    { queue: `${name}.dead`, options: { durable: true } },
    {
      queue: name,
      options: {
        durable: true,
        arguments: { "x-dead-letter-exchange": "", "x-dead-letter-routing-key": `${name}.dead` },
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

export interface ConsumeOptions<T = unknown> {
  prefetch: number; // unsettled messages this consumer holds at once
  maxAttempts?: number; // tries per message before it dead-letters (5)
  /**
   * Called when a message dead-letters because its attempts ran out, e.g. to record the failure.
   * If it throws (the store it records in is away), the message is not dead-lettered but handed
   * back after `exhaustedRetryMs`, and this is called again when it returns.
   */
  onExhausted?: (body: T, messageId: string | undefined) => Promise<void> | void;
}

/** One message in hand. Only the first settling call counts; none throws (if the channel is gone, the broker redelivers). */
export interface Delivery<T = unknown> {
  body: T; // parsed and checked against the queue's schema (lib/messages.ts)
  messageId: string | undefined;
  redelivered: boolean; // seen before: a retry or a broker redelivery
  headers: Record<string, unknown>;
  attempt: number; // 1 on the first try, up to maxAttempts
  maxAttempts: number;
  ack(): Promise<void>;
  /** Try again later (counted); on the last attempt it dead-letters instead (and calls onExhausted). */
  retry(reason?: unknown): Promise<void>;
  /** Give up now: to `<queue>.dead`. */
  deadLetter(reason?: unknown): Promise<void>;
  /** Hand it back, e.g. on shutdown (nack with requeue); its redelivery counts as an attempt. */
  requeue(): Promise<void>;
}

/** Returning without settling acks; throwing without settling retries. */
export type Handler<T = unknown> = (delivery: Delivery<T>) => Promise<void> | void;

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
interface Consumer {
  queue: QueueName;
  options: ConsumeOptions<any>;
  handler: Handler<any>;
  channel?: Channel;
  tag?: string;
}

export async function connectQueue(url: string, log: Logger, options: QueueOptions = {}): Promise<Queue> {
  const publishTimeoutMs = options.publishTimeoutMs ?? 5000;
  const exhaustedRetryMs = options.exhaustedRetryMs ?? 2000;
  const consumers: Consumer[] = [];
  let current: Conn | null = null; // a connection whose setup has finished
  let failure: Error | null = null; // recovery gave up for good
  let [closed, consuming, inFlight] = [false, true, 0];
  let closing: Promise<void> | undefined;
  const waiters: (() => void)[] = [];
  const wake = () => waiters.splice(0).forEach((resolve) => resolve());
  const unavailable = () =>
    new QueueUnavailable(
      failure
        ? `broker unreachable: ${failure.message}`
        : closed
          ? "queue client closed"
          : "not connected to the broker",
    );

  /** A channel lost while its connection lives (a 406, a consumer cancelled by the broker) leaves us half-working: start over. */
  const restart = (conn: Conn, why: string) =>
    setImmediate(() => {
      // the connection's own close event comes right after its channels'
      if (closed || !conn.alive) return;
      log.error({ why }, "broker channel lost; reconnecting");
      conn.model.close().catch(() => {});
    });
  const closedChannels = new WeakSet<Channel>(); // the broker has already taken back their unsettled messages
  const watch = (conn: Conn, channel: Channel, what: string) => {
    channel.on("error", (err: Error) => log.warn({ err, channel: what }, "broker channel error"));
    channel.on("close", () => {
      closedChannels.add(channel);
      restart(conn, `${what} channel closed`);
    });
  };

  async function setup(model: ChannelModel) {
    const conn: Conn = { model, alive: true };
    model.on("close", () => {
      conn.alive = false;
      if (current === conn) current = null;
    });
    model.on("error", () => {}); // reported through the recovering connection
    conn.publisher = await model.createConfirmChannel();
    watch(conn, conn.publisher, "publisher");
    for (const { queue, options } of TOPOLOGY) await conn.publisher.assertQueue(queue, options);
    if (consuming) for (const consumer of consumers) await attach(conn, consumer);
    current = conn;
    wake();
  }

  async function attach(conn: Conn, consumer: Consumer) {
    const channel = await conn.model.createChannel();
    watch(conn, channel, `consumer ${consumer.queue}`);
    await channel.prefetch(consumer.options.prefetch);
    const { consumerTag } = await channel.consume(consumer.queue, (msg) => {
      if (!msg) return restart(conn, `consumer of ${consumer.queue} cancelled by the broker`);
      inFlight++;
      deliver(consumer, channel, msg)
        .catch((err) => log.error({ err, queue: consumer.queue }, "message handling failed"))
        .finally(() => inFlight--);
    });
    Object.assign(consumer, { channel, tag: consumerTag });
    if (!consuming) await channel.cancel(consumerTag).catch(() => {}); // stopConsuming() ran meanwhile
  }

  async function publishRaw(queue: string, content: Buffer, props: Options.Publish) {
    const deadline = Date.now() + publishTimeoutMs;
    while (!current?.publisher) {
      // a reconnect in progress is waited for, within the deadline
      const left = deadline - Date.now();
      if (closed || failure) throw unavailable();
      if (left <= 0) throw new QueueUnavailable(`no broker connection within ${publishTimeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        waiters.push(() => (clearTimeout(timer), resolve()));
      });
    }
    const channel = current.publisher;
    await new Promise<void>((resolve, reject) => {
      const fail = (why: string, cause?: unknown) => (
        clearTimeout(timer), reject(new QueueUnavailable(why, { cause }))
      );
      const timer = setTimeout(
        () => fail(`no confirm from the broker within ${publishTimeoutMs} ms`),
        Math.max(1, deadline - Date.now()),
      );
      try {
        channel.sendToQueue(queue, content, { ...props, persistent: true }, (err) =>
          err
            ? fail(`the broker did not take the message: ${err?.message ?? err}`, err)
            : (clearTimeout(timer), resolve()),
        );
      } catch (err) {
        fail(`the broker channel is closed: ${(err as Error).message}`, err);
      }
    });
  }

  /** A counted copy goes back on the queue, then the original is acked; if that fails the original is handed back. */
  async function republish(channel: Channel, msg: ConsumeMessage, attempts: number) {
    const { messageId, contentType, headers } = msg.properties;
    // Its channel is gone: the broker requeued the original already, and it comes back
    // as a redelivery (counted then). A copy now would be a second message for one job.
    if (closedChannels.has(channel))
      return log.info({ messageId }, "channel closed before the retry; the broker redelivers the message");
    try {
      await publishRaw(msg.fields.routingKey, msg.content, {
        messageId,
        contentType,
        headers: { ...headers, [ATTEMPTS_HEADER]: attempts },
      });
      channel.ack(msg);
    } catch (err) {
      log.warn({ err, messageId }, "could not re-publish for a retry; handing the message back");
      channel.nack(msg, false, true);
    }
  }

  async function deliver({ queue, options, handler }: Consumer, channel: Channel, msg: ConsumeMessage) {
    const maxAttempts = options.maxAttempts ?? 5;
    const headers: Record<string, unknown> = { ...msg.properties.headers };
    const messageId: string | undefined = msg.properties.messageId;
    // Attempts already made; a broker redelivery means the last holder tried and did not settle.
    const made = Math.max(0, Number(headers[ATTEMPTS_HEADER]) || 0) + (msg.fields.redelivered ? 1 : 0);
    const context = { queue, messageId, attempt: made + 1, maxAttempts };
    let settled = false;
    const settle = (what: string, act: () => unknown) => async () => {
      if (settled) return;
      settled = true;
      await Promise.resolve()
        .then(act)
        .catch((err) =>
          log.warn({ err, ...context, what }, "could not settle a message; the broker will redeliver it"),
        );
    };
    const toDead = settle("dead-letter", () => channel.reject(msg, false));
    const exhausted = async (body: unknown, reason: unknown) => {
      log.error({ ...context, reason: String(reason) }, "attempts used up; dead-lettering the message");
      try {
        await options.onExhausted?.(body, messageId);
      } catch (err) {
        // The failure could not be recorded (its store is away): dead-lettered now, the message
        // would be lost without a trace. Held a moment and handed back, it comes back here
        // (its attempts are used up) and the recording is tried again.
        log.error(
          { err, ...context, retryInMs: exhaustedRetryMs },
          "onExhausted failed; handing the message back to record the failure later",
        );
        await new Promise((resolve) => setTimeout(resolve, exhaustedRetryMs));
        return settle("requeue after onExhausted failed", () => channel.nack(msg, false, true))();
      }
      await toDead();
    };

    let body: unknown;
    try {
      body = JSON.parse(msg.content.toString("utf8"));
    } catch {
      log.error({ ...context, bytes: msg.content.length }, "message body is not JSON; dead-lettering it");
      return toDead();
    }
    if (!Value.Check(MESSAGES[queue], body)) {
      const problem = Value.Errors(MESSAGES[queue], body).First();
      log.error(
        { event: "message.malformed", ...context, field: problem?.path, problem: problem?.message },
        "message does not match its queue's schema; dead-lettering it",
      );
      return toDead();
    }
    if (made >= maxAttempts) return exhausted(body, "redelivered after the last attempt");
    if (msg.fields.redelivered) return settle("count redelivery", () => republish(channel, msg, made))();

    const delivery: Delivery = {
      body,
      messageId,
      headers,
      maxAttempts,
      attempt: made + 1,
      redelivered: made > 0,
      ack: settle("ack", () => channel.ack(msg)),
      async retry(reason) {
        if (settled) return;
        if (made + 1 >= maxAttempts) return exhausted(body, reason);
        log.warn({ ...context, reason: String(reason) }, "will retry the message");
        return settle("retry", () => republish(channel, msg, made + 1))();
      },
      async deadLetter(reason) {
        if (!settled) log.warn({ ...context, reason: String(reason) }, "dead-lettering the message");
        return toDead();
      },
      requeue: settle("requeue", () => channel.nack(msg, false, true)),
    };
    try {
      await handler(delivery);
      await delivery.ack();
    } catch (err) {
      await delivery.retry(err);
    }
  }

  const broker = (() => {
    const u = new URL(url);
    return `${u.host}${u.pathname || "/"}`;
  })(); // never the password
  const {
    initialMaxRetries = 10,
    maxRetries = Infinity,
    initialDelayMs: initialDelay = 100,
    maxDelayMs: maxDelay = 5000,
  } = options;
  const connection = await amqp.connect(url, {
    clientProperties: { connection_name: String(log.bindings().service ?? "m3dio") },
    // waitForConnect false: the listeners below go on before the first attempt.
    recovery: { waitForConnect: false, initialMaxRetries, maxRetries, initialDelay, maxDelay, setup },
  });
  let connects = 0;
  connection.on("connect", () =>
    log.info({ broker }, connects++ ? "reconnected to the broker" : "connected to the broker"),
  );
  connection.on("disconnect", (err: Error) => log.warn({ err, broker }, "lost the broker connection"));
  connection.on("reconnect-scheduled", ({ attempt, delay, error }) =>
    log.warn({ attempt, delayMs: delay, err: error, broker }, "reconnecting to the broker"),
  );
  connection.on("reconnect-failed", (err: Error) => {
    failure = err;
    wake();
    log.error({ err, broker }, "gave up connecting to the broker");
  });
  connection.on("error", (err: Error) => log.warn({ err }, "broker connection error"));
  connection.on("blocked", (reason: string) => log.warn({ reason }, "the broker blocks publishing"));
  connection.on("unblocked", () => log.info("the broker takes messages again"));
  connection.on("handler-error", (err: Error, event: string) =>
    log.error({ err, event }, "broker event listener failed"),
  );

  async function stopConsuming() {
    consuming = false;
    await Promise.all(
      consumers.map(({ channel, tag }) => (channel && tag ? channel.cancel(tag).catch(() => {}) : undefined)),
    );
  }

  const queue: Queue = {
    publish: (name, body, { messageId, headers }) =>
      publishRaw(name, Buffer.from(JSON.stringify(body)), {
        messageId,
        headers,
        contentType: "application/json",
        timestamp: Math.floor(Date.now() / 1000),
      }),
    async consume(name, options, handler) {
      if (closed || !consuming) throw new Error("this queue client has stopped consuming");
      const consumer: Consumer = { queue: name, options, handler };
      consumers.push(consumer);
      // Not connected: the next setup attaches it. A failure here closes the connection and recovery retries.
      if (current)
        await attach(current, consumer).catch((err) =>
          log.warn({ err, queue: name }, "could not attach a consumer yet"),
        );
    },
    stopConsuming,
    inFlight: () => inFlight,
    ping: async () => {
      if (!current?.alive) throw unavailable();
      return true as const;
    },
    close: () =>
      (closing ??= (async () => {
        closed = true; // first, so channels closing now do not trigger a restart
        await stopConsuming();
        current = null;
        wake();
        await connection.close();
      })()),
  };

  if (options.waitForConnect ?? true) {
    await connection.waitForConnect().catch(async (err: Error) => {
      await connection.close();
      throw new QueueUnavailable(`could not connect to the broker: ${err.message}`, { cause: err });
    });
  }
  return queue;
}
