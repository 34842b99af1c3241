// What the fault tests share: a user driving the gateway over real HTTP, waiting
// for jobs and emails, the stores' invariants ("nothing half-written, nothing
// orphaned"), a MongoDB stand-in in a process of its own, and a slowed ffmpeg so a
// conversion lasts long enough to be interrupted.
import { chmodSync, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MongoClient, type ObjectId } from "mongodb";
import { settle } from "../support/jobs.ts";
import type { System } from "../support/system.ts";

export const REQUEST_TIMEOUT_MS = 20_000;

/**
 * Scripts and media made here, named after what they are and kept for the next run (a
 * few MB). Each is written under a temporary name and renamed, so two runs at once never
 * see a half-written one.
 */
const workDir = join(tmpdir(), "m3dio-faults");
mkdirSync(workDir, { recursive: true });
const partial = (path: string) => `${path}.partial-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

export interface JobView {
  id: string;
  status: "queued" | "converting" | "done" | "failed";
  progress: number;
  error?: string;
  audio?: { bytes: number; durationSec: number };
}

export interface User {
  email: string;
  password: string;
  token: string;
  headers: { authorization: string };
}

const json = { "content-type": "application/json" };
let users = 0;

export function client(system: System) {
  const call = (path: string, init: RequestInit = {}) =>
    fetch(`${system.gatewayUrl}${path}`, { ...init, signal: init.signal ?? AbortSignal.timeout(REQUEST_TIMEOUT_MS) });

  /** Registers and logs in through the gateway; throws with the answer if either fails. */
  async function newUser(prefix = "fault"): Promise<User> {
    const email = `${prefix}-${++users}-${process.pid}-${Date.now()}@example.com`;
    const password = "a long enough password";
    const registered = await call("/auth/register", {
      method: "POST",
      headers: json,
      body: JSON.stringify({ email, password }),
    });
    if (registered.status !== 201)
      throw new Error(`register answered ${registered.status}: ${await registered.text()}`);
    const token = await login(email, password);
    return { email, password, token, headers: { authorization: `Bearer ${token}` } };
  }

  async function login(email: string, password: string): Promise<string> {
    const answer = await call("/auth/login", {
      method: "POST",
      headers: json,
      body: JSON.stringify({ email, password }),
    });
    if (answer.status !== 200) throw new Error(`login answered ${answer.status}: ${await answer.text()}`);
    return ((await answer.json()) as { token: string }).token;
  }

  /** POST /jobs with the video as multipart `file`: the raw answer (the caller checks the status). */
  async function postVideo(
    user: User,
    video: Uint8Array,
    filename = "clip.mp4",
    init: RequestInit = {},
  ): Promise<Response> {
    const form = new FormData();
    form.append("file", new Blob([video as Uint8Array<ArrayBuffer>], { type: "video/mp4" }), filename);
    return call("/jobs", { method: "POST", headers: user.headers, body: form, ...init });
  }

  /** Uploads and expects 202; answers the job. */
  async function upload(user: User, video: Uint8Array, filename = "clip.mp4"): Promise<JobView> {
    const answer = await postVideo(user, video, filename);
    const text = await answer.text();
    if (answer.status !== 202) throw new Error(`upload answered ${answer.status}: ${text}`);
    return JSON.parse(text) as JobView;
  }

  async function job(user: User, id: string): Promise<JobView> {
    const answer = await call(`/jobs/${id}`, { headers: user.headers });
    if (answer.status !== 200) throw new Error(`GET /jobs/${id} answered ${answer.status}: ${await answer.text()}`);
    return (await answer.json()) as JobView;
  }

  /** Polls until done or failed (a 5xx while polling is retried: the test may be breaking things). */
  async function finished(user: User, id: string, timeoutMs = 60_000): Promise<JobView> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown = "no answer yet";
    for (;;) {
      try {
        const answer = await call(`/jobs/${id}`, { headers: user.headers, signal: AbortSignal.timeout(5000) });
        if (answer.status === 200) {
          const view = (await answer.json()) as JobView;
          last = view;
          if (view.status === "done" || view.status === "failed") return view;
        } else last = `${answer.status} ${await answer.text()}`;
      } catch (error) {
        last = (error as Error).message;
      }
      if (Date.now() > deadline)
        throw new Error(`job ${id} not finished within ${timeoutMs} ms; last: ${JSON.stringify(last)}`);
      await Bun.sleep(200);
    }
  }

  return { call, newUser, login, postVideo, upload, job, finished };
}

/**
 * Follows a job's live events (SSE) until the server ends the stream: answers the
 * statuses seen and, if the stream broke instead of ending, the error.
 */
export async function followEvents(
  system: System,
  user: User,
  id: string,
  timeoutMs = 60_000,
): Promise<{ statuses: string[]; error?: string }> {
  const statuses: string[] = [];
  try {
    const answer = await fetch(`${system.gatewayUrl}/jobs/${id}/events`, {
      headers: user.headers,
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (answer.status !== 200) return { statuses, error: `answered ${answer.status}: ${await answer.text()}` };
    const reader = answer.body!.pipeThrough(new TextDecoderStream()).getReader();
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
      for (const match of chunk.value.matchAll(/"status":"(\w+)"/g)) statuses.push(match[1]!);
    }
    return { statuses };
  } catch (error) {
    return { statuses, error: `${(error as Error).name}: ${(error as Error).message}` };
  }
}

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

/** Emails the Resend stand-in accepted, per idempotency key: requests seen and whether one was delivered. */
export function emailsByKey(system: System): Map<string, number> {
  const counts = new Map<string, number>();
  for (const email of system.resend!.received)
    counts.set(email.idempotencyKey ?? "none", (counts.get(email.idempotencyKey ?? "none") ?? 0) + 1);
  return counts;
}

export interface StoreReport {
  jobs: { id: string; status: string; kind: string }[];
  /** Every way the stores disagree: a file no job owns, a job whose file is gone, chunks without a file, a file missing chunks. */
  problems: string[];
  /** mp3s files per job id (from the files' metadata). */
  mp3sPerJob: Map<string, number>;
}

/**
 * The stores' report once they agree, or the last report after `timeoutMs`: a worker finishes
 * some clean-up (the source video's removal, files then chunks) after the job reads done.
 */
export function settledStores(system: System, timeoutMs = 15_000): Promise<StoreReport> {
  return settle(
    () => inspectStores(system),
    (report) => report.problems.length === 0,
    timeoutMs,
  );
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
      jobs: jobs.map((job) => ({ id: String(job._id), status: job.status, kind: job.source?.kind })),
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

/**
 * A script running the real ffmpeg at `rate` × real time (`-readrate`, ffmpeg 5+), for
 * FFMPEG_PATH: a conversion then lasts long enough to be interrupted on purpose.
 * Undefined where ffmpeg lacks `-readrate`.
 */
export async function pacedFfmpeg(rate: number): Promise<string | undefined> {
  const ffmpeg = Bun.which("ffmpeg") ?? "ffmpeg";
  const help = Bun.spawn([ffmpeg, "-hide_banner", "-h", "full"], { stdout: "pipe", stderr: "ignore" });
  if (!(await new Response(help.stdout).text()).includes("-readrate")) return undefined;
  const path = join(workDir, `ffmpeg-paced-${rate}-${Bun.hash(ffmpeg).toString(36)}`);
  if (existsSync(path)) return path;
  const temporary = partial(path);
  writeFileSync(temporary, `#!/bin/sh\nexec '${ffmpeg}' -readrate ${rate} "$@"\n`);
  chmodSync(temporary, 0o755);
  renameSync(temporary, path);
  return path;
}

/** Reads a video file into memory once (uploads send it many times). */
export const bytesOf = async (path: string) => new Uint8Array(await Bun.file(path).arrayBuffer());

/**
 * A video of noise (with a tone), which barely compresses: about 1.5 MB a second at
 * 320x240, so an upload of it is still being written to GridFS when a test cuts the store.
 */
export async function noisyVideo(seconds: number): Promise<string> {
  const path = join(workDir, `noise-${seconds}s.mp4`);
  if (existsSync(path)) return path;
  const temporary = partial(path);
  const child = Bun.spawn(
    [
      "ffmpeg",
      "-hide_banner",
      "-loglevel",
      "error",
      "-y",
      "-f",
      "lavfi",
      "-i",
      `testsrc=duration=${seconds}:size=320x240:rate=15`,
      "-f",
      "lavfi",
      "-i",
      `sine=frequency=440:duration=${seconds}`,
      "-vf",
      "noise=alls=100:allf=t",
      "-c:v",
      "libx264",
      "-preset",
      "ultrafast",
      "-c:a",
      "aac",
      "-shortest",
      "-f",
      "mp4",
      temporary,
    ],
    { stdout: "ignore", stderr: "pipe" },
  );
  const [code, err] = await Promise.all([child.exited, new Response(child.stderr).text()]);
  if (code !== 0) {
    rmSync(temporary, { force: true });
    throw new Error(`ffmpeg failed (${code}): ${err}`);
  }
  renameSync(temporary, path);
  return path;
}

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
