// Watching jobs and queues from a test: wait for a job to reach a state, and take the
// messages a queue holds (what the next consumer would get).
import amqp from "amqplib";
import { type Job, type JobStore, parseJobId } from "../../lib/jobs.ts";
import type { QueueName } from "../../lib/queue.ts";

/** The job once its status is one of `statuses` (by default: finished); throws after `timeoutMs`. */
export async function waitForJob(
  jobs: JobStore,
  id: { toHexString(): string } | string,
  statuses: Job["status"][] = ["done", "failed"],
  timeoutMs = 60_000,
): Promise<Job> {
  const jobId = parseJobId(typeof id === "string" ? id : id.toHexString())!;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await jobs.get(jobId);
    if (job && statuses.includes(job.status)) return job;
    if (Date.now() > deadline) throw new Error(`job ${jobId} still ${job?.status} after ${timeoutMs} ms`);
    await Bun.sleep(100);
  }
}

/**
 * Takes every message `queue` holds on the vhost at `amqpUrl`, parsed, waiting up to `timeoutMs`
 * for at least `expected` of them: a worker publishes after it updates the job, so a test that saw
 * the job finish may ask before the message is there.
 */
export async function drainQueue<T = { jobId: string; status: string }>(
  amqpUrl: string,
  queue: QueueName | `${QueueName}.dead`,
  expected = 0,
  timeoutMs = 10_000,
): Promise<T[]> {
  const connection = await amqp.connect(amqpUrl);
  try {
    const channel = await connection.createChannel();
    const messages: T[] = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const message = await channel.get(queue, { noAck: true });
      if (message) messages.push(JSON.parse(message.content.toString()) as T);
      else if (messages.length >= expected || Date.now() > deadline) return messages;
      else await Bun.sleep(50);
    }
  } finally {
    await connection.close();
  }
}

/** Reads `read()` until `settled` holds or `timeoutMs` passes; returns the last value for the test to assert (work a worker does after the job is marked). */
export async function settle<T>(
  read: () => Promise<T>,
  settled: (value: T) => boolean,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (settled(value) || Date.now() > deadline) return value;
    await Bun.sleep(50);
  }
}
