// What the fault tests share besides their running system (./system.ts): waiting for
// emails and the stores' invariants ("nothing half-written, nothing orphaned"), a MongoDB
// stand-in in a process of its own, and media that take time to upload. A user drives
// the gateway with test/support/client.ts.
import { tmpdir } from "node:os";
import { join } from "node:path";
import amqp from "amqplib";
import { MongoClient, ObjectId } from "mongodb";
import { QUEUES } from "../../lib/messages.ts";
import type { GatewayClient, User } from "../support/client.ts";
import { settle } from "../support/jobs.ts";
import { keptVideo } from "../support/media.ts";
import type { System } from "../support/system.ts";

/** Waits until `check` answers truthy; throws with `what` after `timeoutMs`. */
type Truthy<T> = Exclude<T, false | null | undefined | 0 | "">;
export async function eventually<T>(
  what: string,
  check: () => T | Promise<T>,
  timeoutMs = 30_000,
  everyMs = 100,
): Promise<Truthy<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as Truthy<T>;
      last = value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline)
      throw new Error(
        `${what}: not within ${timeoutMs} ms (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`,
      );
    await Bun.sleep(everyMs);
  }
}

/** Resolves once the job's conversion has begun (its progress is above 0); throws after 20 s. */
export const conversionUnderWay = (http: GatewayClient, user: User, jobId: string) =>
  eventually("a conversion under way", async () => (await http.job(user, jobId)).progress > 0, 20_000, 50);

/** The conversions' emails (not the account emails: verification, reset) the Resend stand-in received for `to`. */
export const jobEmailsTo = (system: System, to: string) =>
  system.resend!.received.filter((email) => email.to === to && email.idempotencyKey?.startsWith("job-"));

/** Emails the Resend stand-in accepted, per idempotency key: requests seen and whether one was delivered. */
export function emailsByKey(system: System): Map<string, number> {
  const counts = new Map<string, number>();
  for (const email of system.resend!.received)
    counts.set(email.idempotencyKey ?? "none", (counts.get(email.idempotencyKey ?? "none") ?? 0) + 1);
  return counts;
}

/**
 * Resolves once every job of `jobIds` is recorded as notified (the notifier marks a job once
 * Resend took its email, before it acks the message) and the mp3 queue holds no message
 * waiting for the notifier. From then on a redelivered message finds its job notified and
 * sends nothing, so the emails counted are final. Throws after `timeoutMs`.
 */
export async function emailsSettled(system: System, jobIds: string[], timeoutMs = 20_000): Promise<void> {
  const mongo = new MongoClient(system.mongoUrl, { serverSelectionTimeoutMS: 5000 });
  const broker = await amqp.connect(system.amqpUrl);
  try {
    const channel = await broker.createChannel();
    const ids = jobIds.map((id) => new ObjectId(id));
    const jobs = mongo.db().collection("jobs");
    await eventually(
      "every email recorded and no mp3 message waiting",
      async () =>
        (await jobs.countDocuments({ _id: { $in: ids }, notifiedAt: { $exists: true } })) === ids.length &&
        (await channel.checkQueue(QUEUES.mp3)).messageCount === 0,
      timeoutMs,
      50,
    );
  } finally {
    await Promise.all([mongo.close(), broker.close()]);
  }
}

export interface StoreReport {
  /** Every job, with its owner's email. */
  jobs: { id: string; status: string; kind: string; email: string }[];
  /** Every way the stores disagree: a file no job owns, a job whose file is gone, chunks without a file, a file missing chunks. */
  problems: string[];
  /** mp3s files per job id (from the files' metadata). */
  mp3sPerJob: Map<string, number>;
}

/**
 * The stores' report once they agree, or the last report after `timeoutMs`: a worker finishes
 * some clean-up (the source video's removal, files then chunks) after the job reads done.
 */
export async function settledStores(
  system: System & { knownProblems?: string[] },
  timeoutMs = 15_000,
): Promise<StoreReport> {
  // Problems an earlier test left in a shared system were reported there (./system.ts); these are this test's.
  const known = new Set(system.knownProblems ?? []);
  const report = () =>
    inspectStores(system).then((found) => ({ ...found, problems: found.problems.filter((p) => !known.has(p)) }));
  return settle(report, (found) => found.problems.length === 0, timeoutMs);
}

/**
 * Reads the system's MongoDB directly (not through any proxy) and checks that
 * nothing is half-written or orphaned: every GridFS file belongs to a job
 * (videos by `videoFileId`, MP3s by `audioFileId`), every file has all its
 * chunks and every chunk its file, a queued or converting upload's video exists,
 * and a done job's MP3 exists.
 */
export async function inspectStores(system: System): Promise<StoreReport> {
  const mongo = new MongoClient(system.mongoUrl, { serverSelectionTimeoutMS: 5000 });
  try {
    const db = mongo.db();
    const jobs = await db.collection("jobs").find({}).toArray();
    const problems: string[] = [];
    const mp3sPerJob = new Map<string, number>();
    const owners = { videos: new Set<string>(), mp3s: new Set<string>() };
    for (const job of jobs) {
      if (job.videoFileId) owners.videos.add(String(job.videoFileId));
      if (job.audioFileId) owners.mp3s.add(String(job.audioFileId));
    }
    const present = { videos: new Set<string>(), mp3s: new Set<string>() };
    for (const bucket of ["videos", "mp3s"] as const) {
      const files = await db.collection(`${bucket}.files`).find({}).toArray();
      const chunks = await db
        .collection(`${bucket}.chunks`)
        .aggregate<{ _id: ObjectId; n: number }>([{ $group: { _id: "$files_id", n: { $sum: 1 } } }])
        .toArray();
      const chunkCount = new Map(chunks.map((c) => [String(c._id), c.n]));
      for (const file of files) {
        const id = String(file._id);
        present[bucket].add(id);
        const expected = Math.ceil(Number(file.length) / Number(file.chunkSize));
        if ((chunkCount.get(id) ?? 0) !== expected)
          problems.push(`${bucket} file ${id} has ${chunkCount.get(id) ?? 0} of ${expected} chunks`);
        if (!owners[bucket].has(id))
          problems.push(
            `${bucket} file ${id} (${file.filename}, job ${file.metadata?.jobId ?? "?"}) belongs to no job`,
          );
        if (bucket === "mp3s" && file.metadata?.jobId)
          mp3sPerJob.set(file.metadata.jobId, (mp3sPerJob.get(file.metadata.jobId) ?? 0) + 1);
      }
      for (const [id, n] of chunkCount)
        if (!present[bucket].has(id)) problems.push(`${n} ${bucket} chunks of file ${id} have no file`);
    }
    for (const job of jobs) {
      const id = String(job._id);
      const needsVideo = (job.status === "queued" || job.status === "converting") && job.source?.kind === "upload";
      if (needsVideo && !(job.videoFileId && present.videos.has(String(job.videoFileId))))
        problems.push(`job ${id} (${job.status}) has no video`);
      if (job.status === "done" && !(job.audioFileId && present.mp3s.has(String(job.audioFileId))))
        problems.push(`job ${id} is done but its MP3 is gone`);
    }
    return {
      jobs: jobs.map((job) => ({ id: String(job._id), status: job.status, kind: job.source?.kind, email: job.email })),
      problems,
      mp3sPerJob,
    };
  } finally {
    await mongo.close();
  }
}

/** The MongoDB stand-in in a process of its own (or MONGODB_URL's server when set): its URL and how to stop it. */
export async function startMongoProcess(): Promise<{ url: string; stop(): Promise<void> }> {
  if (process.env.MONGODB_URL) return { url: process.env.MONGODB_URL, stop: async () => {} };
  const child = Bun.spawn([process.execPath, join(import.meta.dir, "../support/mongo-standin.ts"), "--port", "0"], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "ignore",
  });
  const reader = child.stdout.getReader();
  let text = "";
  const deadline = Date.now() + 10_000;
  while (!text.includes("\n")) {
    const chunk = await Promise.race([
      reader.read(),
      Bun.sleep(Math.max(1, deadline - Date.now())).then(() => "timeout" as const),
    ]);
    if (chunk === "timeout" || chunk.done) {
      child.kill("SIGKILL");
      throw new Error("the MongoDB stand-in process did not print its URL");
    }
    text += new TextDecoder().decode(chunk.value);
  }
  reader.releaseLock();
  void child.stdout.pipeTo(new WritableStream()).catch(() => {}); // keep draining
  const url = text.split("\n")[0]!.trim();
  const kill = () => child.kill("SIGKILL");
  process.once("exit", kill);
  return {
    url,
    async stop() {
      process.off("exit", kill);
      child.kill("SIGTERM");
      await Promise.race([child.exited, Bun.sleep(3000).then(() => child.kill("SIGKILL"))]);
    },
  };
}

/** Reads a video file into memory once (uploads send it many times). */
export const bytesOf = async (path: string) => new Uint8Array(await Bun.file(path).arrayBuffer());

/**
 * A video of noise (with a tone), which barely compresses: about 1.5 MB a second at
 * 320x240, so an upload of it is still being written to GridFS when a test cuts the store.
 * Kept for the next run (a few MB).
 */
export const noisyVideo = (seconds: number): Promise<string> =>
  keptVideo(join(tmpdir(), "m3dio-faults"), `noise-${seconds}s`, { seconds, size: "320x240", noise: 100 });

/**
 * A request body that sends `bytes` in `chunkBytes` pieces, `everyMs` apart, and
 * calls `onSent(sentSoFar)` after each: an upload that takes time, for a fault to
 * land in its middle.
 */
export function trickle(
  bytes: Uint8Array,
  chunkBytes: number,
  everyMs: number,
  onSent: (sent: number) => void = () => {},
): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    async pull(controller) {
      if (at >= bytes.length) return controller.close();
      if (at > 0) await Bun.sleep(everyMs);
      const piece = bytes.subarray(at, at + chunkBytes);
      at += piece.length;
      controller.enqueue(piece);
      onSent(at);
    },
  });
}
