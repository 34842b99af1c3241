// The consuming half of lib/queue.ts: one message in hand. Its attempt comes from the quorum
// queue's own count, its body is checked against the queue's schema, and it is settled once:
// acked, retried (counted), handed back, or dead-lettered, with onExhausted called when its
// attempts run out. lib/queue.ts explains why quorum queues and how returns are counted.
import { Value } from "@sinclair/typebox/value";
import type { Channel, ConsumeMessage } from "amqplib";
import type { Logger } from "./log.ts";
import { MESSAGES, type QueueName } from "./messages.ts";

/** The most attempts a consumer may ask for (services' MAX_ATTEMPTS); the broker's limit stays above it. */
export const MAX_ATTEMPTS = 20;
export const DEFAULT_MAX_ATTEMPTS = 5;

export interface ConsumeOptions<T = unknown> {
  prefetch: number; // unsettled messages this consumer holds at once
  maxAttempts?: number; // tries per message before it dead-letters (5; 1 to MAX_ATTEMPTS)
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
  /** Hand it back, e.g. on shutdown (nack with requeue); its redelivery counts as an attempt up to RabbitMQ 4.2. */
  requeue(): Promise<void>;
}

/** Returning without settling acks; throwing without settling retries. */
export type Handler<T = unknown> = (delivery: Delivery<T>) => Promise<void> | void;

/**
 * Attempts made before this delivery: the quorum queue's `x-delivery-count`. A first delivery
 * (not redelivered) has made none, whatever header its publisher set.
 */
function attemptsMade(msg: ConsumeMessage): number {
  if (!msg.fields.redelivered) return 0;
  return Math.max(0, Math.floor(Number(msg.properties.headers?.["x-delivery-count"])) || 0);
}

/** The body if it is JSON matching the queue's schema, else what is wrong with it. */
function parseBody(queue: QueueName, content: Buffer): { body: unknown } | { problem: string; field?: string } {
  let body: unknown;
  try {
    body = JSON.parse(content.toString("utf8"));
  } catch {
    return { problem: "not JSON" };
  }
  if (Value.Check(MESSAGES[queue], body)) return { body };
  const error = Value.Errors(MESSAGES[queue], body).First();
  return { problem: error?.message ?? "does not match the schema", field: error?.path };
}

/** The ways to settle one message; only the first call does anything, and none throws. */
function settlement(log: Logger, channel: Channel, msg: ConsumeMessage, context: Record<string, unknown>) {
  let settled = false;
  const once = (what: string, act: () => void) => async () => {
    if (settled) return;
    settled = true;
    try {
      act();
    } catch (err) {
      // the channel is gone: the broker took the message back and redelivers it
      log.warn(
        { event: "message.settle_failed", err, ...context, what },
        "could not settle a message; the broker will redeliver it",
      );
    }
  };
  return {
    isSettled: () => settled,
    ack: once("ack", () => channel.ack(msg)),
    retry: once("retry", () => channel.reject(msg, true)), // basic.reject: counted by every broker version
    handBack: once("hand back", () => channel.nack(msg, false, true)), // basic.nack: not counted from RabbitMQ 4.3
    deadLetter: once("dead-letter", () => channel.reject(msg, false)),
  };
}

/** A consumer as deliver() needs it. */
export interface Consumer {
  queue: QueueName;
  options: ConsumeOptions; // of this queue's message type, erased: deliver() checks bodies against the schema
  handler: Handler;
}

interface InHand {
  log: Logger;
  settle: ReturnType<typeof settlement>;
  context: { queue: QueueName; messageId: string | undefined; attempt: number; maxAttempts: number };
}

/** Checks, hands to the consumer's handler and settles one message; `exhaustedRetryMs` paces a failing onExhausted. */
export async function deliver(
  log: Logger,
  exhaustedRetryMs: number,
  { queue, options, handler }: Consumer,
  channel: Channel,
  msg: ConsumeMessage,
) {
  const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  const messageId: string | undefined = msg.properties.messageId;
  const made = attemptsMade(msg);
  const context = { queue, messageId, attempt: made + 1, maxAttempts };
  const hand: InHand = { log, context, settle: settlement(log, channel, msg, context) };

  const parsed = parseBody(queue, msg.content);
  if (!("body" in parsed)) {
    log.error(
      { event: "message.malformed", ...context, ...parsed, bytes: msg.content.length },
      "message does not match its queue's schema; dead-lettering it",
    );
    return hand.settle.deadLetter();
  }
  const { body } = parsed;
  const exhausted = (reason: unknown) => exhaust(hand, options, body, reason, exhaustedRetryMs);
  // The last holder tried it (or handed it back) on its last attempt and did not settle it.
  if (made >= maxAttempts) return exhausted("redelivered after the last attempt");

  const delivery = deliveryOf(hand, msg, body, exhausted);
  try {
    await handler(delivery);
    await delivery.ack();
  } catch (err) {
    await delivery.retry(err);
  }
}

/** The Delivery a handler gets: its attempt, and the settling calls with their log lines. */
function deliveryOf(
  { log, settle, context }: InHand,
  msg: ConsumeMessage,
  body: unknown,
  exhausted: (reason: unknown) => Promise<void>,
): Delivery {
  const { messageId, attempt, maxAttempts } = context;
  return {
    body,
    messageId,
    headers: { ...msg.properties.headers },
    maxAttempts,
    attempt,
    redelivered: msg.fields.redelivered || attempt > 1,
    ack: settle.ack,
    async retry(reason) {
      if (settle.isSettled()) return;
      if (attempt >= maxAttempts) return exhausted(reason);
      log.warn({ event: "message.retry", ...context, reason: String(reason) }, "will retry the message");
      return settle.retry();
    },
    async deadLetter(reason) {
      if (!settle.isSettled())
        log.warn({ event: "message.dead_lettered", ...context, reason: String(reason) }, "dead-lettering the message");
      return settle.deadLetter();
    },
    requeue: settle.handBack,
  };
}

/** Attempts used up: onExhausted records it, then the message is dead-lettered. */
async function exhaust(
  { log, settle, context }: InHand,
  options: ConsumeOptions,
  body: unknown,
  reason: unknown,
  retryMs: number,
) {
  log.error(
    { event: "message.exhausted", ...context, reason: String(reason) },
    "attempts used up; dead-lettering the message",
  );
  try {
    await options.onExhausted?.(body, context.messageId);
  } catch (err) {
    // The failure could not be recorded (its store is away): dead-lettered now, the message
    // would be gone without a trace. Held a moment and handed back, it comes back here (its
    // attempts are used up) and the recording is tried again, until the broker's limit.
    log.error(
      { event: "message.exhausted_failed", err, ...context, retryInMs: retryMs },
      "onExhausted failed; handing the message back to record the failure later",
    );
    await new Promise((resolve) => setTimeout(resolve, retryMs));
    return settle.handBack();
  }
  await settle.deadLetter();
}
