// The whole pipeline as real processes (test/support/system.ts: auth, gateway, converters,
// notifier with a local Resend stand-in), MongoDB from MONGODB_URL or the stand-in in a
// process of its own: end-to-end latency of a 30-second clip (upload answered to MP3
// downloadable, following the job by polling every 20 ms and by its SSE stream) against
// bare ffmpeg on the same file; jobs per minute for 20 uploads with one and with two
// converter processes; and each service's peak memory (VmHWM) during those runs.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gatewayClient } from "../test/support/client.ts";
import { type System, startSystem } from "../test/support/system.ts";
import {
  bareFfmpeg,
  median,
  readMemory,
  report,
  reportLoad,
  resetPeak,
  startMongo,
  stopAll,
  testClip,
} from "./support.ts";

const BENCH = "pipeline";
const LATENCY_RUNS = 5;
const UPLOADS = 20;
const UPLOAD_CONCURRENCY = 4;
const POLL_MS = 20;

interface JobView {
  id: string;
  status: string;
  error?: string;
}

reportLoad(BENCH, "start");
const mongoServer = await startMongo();
const previousMongoUrl = process.env.MONGODB_URL;
process.env.MONGODB_URL = mongoServer.url; // startSystem takes a fresh database on it
const work = mkdtempSync(join(tmpdir(), "m3dio-bench-pipeline-"));
let system: System | undefined;
try {
  const clip = await testClip(30);
  const clipBytes = readFileSync(clip);
  // One user queues all UPLOADS at once: more than MAX_ACTIVE_JOBS' default of 5.
  system = await startSystem({ converters: 1, resend: true, env: { gateway: { MAX_ACTIVE_JOBS: "100" } } });
  const base = system.gatewayUrl;
  const { headers } = await gatewayClient(base).newUser("bench");

  async function upload(): Promise<{ id: string; answeredAt: number }> {
    const response = await fetch(`${base}/jobs?filename=clip.mp4`, {
      method: "POST",
      headers: { ...headers, "content-type": "video/mp4" },
      body: clipBytes,
    });
    const answeredAt = performance.now();
    const job = (await response.json()) as JobView;
    if (response.status !== 202) throw new Error(`upload answered ${response.status}: ${JSON.stringify(job)}`);
    return { id: job.id, answeredAt };
  }
  /** Resolves once GET /jobs/:id/audio answers 200 (the MP3 is downloadable). */
  async function audioReady(id: string): Promise<void> {
    const response = await fetch(`${base}/jobs/${id}/audio`, { headers });
    if (response.status !== 200) throw new Error(`audio answered ${response.status}`);
    await response.arrayBuffer();
  }
  async function followByPolling(id: string, timeoutMs = 60_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const job = (await (await fetch(`${base}/jobs/${id}`, { headers })).json()) as JobView;
      if (job.status === "done") return audioReady(id);
      if (job.status === "failed") throw new Error(`job ${id} failed: ${job.error}`);
      if (performance.now() > deadline) throw new Error(`job ${id} still ${job.status} after ${timeoutMs} ms`);
      await Bun.sleep(POLL_MS);
    }
  }
  async function followBySse(id: string): Promise<void> {
    const response = await fetch(`${base}/jobs/${id}/events`, {
      headers: { ...headers, accept: "text/event-stream" },
      signal: AbortSignal.timeout(60_000),
    });
    const decoder = new TextDecoder();
    let text = "";
    for await (const chunk of response.body!) {
      text += decoder.decode(chunk, { stream: true });
      if (/"status":"done"/.test(text)) return audioReady(id);
      if (/"status":"failed"/.test(text)) throw new Error(`job ${id} failed`);
    }
    throw new Error(`the event stream of ${id} ended without done`);
  }

  // ── latency: one job at a time, the system otherwise idle ──────────────────
  await followByPolling((await upload()).id); // warm-up: the converter's first job probes ffmpeg's capabilities
  const polled: number[] = [];
  const streamed: number[] = [];
  const bare: number[] = [];
  for (let i = 0; i < LATENCY_RUNS; i++) {
    const first = await upload();
    await followByPolling(first.id);
    polled.push(performance.now() - first.answeredAt);
    const second = await upload();
    await followBySse(second.id);
    streamed.push(performance.now() - second.answeredAt);
    bare.push(await bareFfmpeg(clip, join(work, "bare.mp3")));
  }
  const ffmpegMs = median(bare);
  // The converter's own share, from its "job.converted" log lines (message taken to MP3 stored and announced).
  const converterSeconds = new Map<string, number>();
  for (const line of system.service("converter").logs) {
    try {
      const entry = JSON.parse(line) as { event?: string; jobId?: string; seconds?: number };
      if (entry.event === "job.converted" && entry.jobId && typeof entry.seconds === "number")
        converterSeconds.set(entry.jobId, entry.seconds);
    } catch {}
  }
  const converterShare = [...converterSeconds.values()].slice(1).map((seconds) => seconds * 1000); // without the warm-up
  report(BENCH, "30 s clip: bare ffmpeg (median of 5)", ffmpegMs, "ms");
  report(
    BENCH,
    "30 s clip: upload answered → MP3 downloadable, polling 20 ms (median)",
    median(polled),
    "ms",
    `≤ ffmpeg + 300 ms`,
  );
  report(BENCH, "30 s clip: overhead over ffmpeg, polling", median(polled) - ffmpegMs, "ms", "≤ 300 ms");
  if (converterShare.length)
    report(BENCH, "30 s clip: of which the converter's own time (its log, median)", median(converterShare), "ms");
  report(BENCH, "30 s clip: upload answered → MP3 downloadable, following SSE (median)", median(streamed), "ms");
  report(BENCH, "30 s clip: overhead over ffmpeg, SSE", median(streamed) - ffmpegMs, "ms", "≤ 300 ms");

  // ── throughput and memory: 20 uploads, one and then two converters ─────────
  async function throughput(label: string) {
    const pids = system!.services.map((service) => service.child.pid);
    for (const pid of pids) resetPeak(pid);
    const started = performance.now();
    const ids: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: UPLOAD_CONCURRENCY }, async () => {
        while (next < UPLOADS) {
          next++;
          ids.push((await upload()).id);
        }
      }),
    );
    // Every job done: one listing of the caller's newest jobs per poll.
    const deadline = performance.now() + 300_000;
    for (;;) {
      const page = (await (await fetch(`${base}/jobs?limit=100`, { headers })).json()) as { items: JobView[] };
      const states = new Map(page.items.map((job) => [job.id, job]));
      const failed = ids.filter((id) => states.get(id)?.status === "failed");
      if (failed.length) throw new Error(`${label}: ${failed.length} jobs failed: ${states.get(failed[0]!)?.error}`);
      if (ids.every((id) => states.get(id)?.status === "done")) break;
      if (performance.now() > deadline) throw new Error(`${label}: not all done within 300 s`);
      await Bun.sleep(POLL_MS);
    }
    const minutes = (performance.now() - started) / 60_000;
    report(BENCH, `jobs/min, ${UPLOADS} uploads of 30 s clips, ${label}`, UPLOADS / minutes, "jobs/min");
    for (const service of system!.services) {
      const memory = readMemory(service.child.pid);
      const name = service.name === "converter" ? `converter #${service.index}` : service.name;
      if (memory) report(BENCH, `peak RSS (VmHWM) during the run, ${name} (${label})`, memory.hwm / 1e6, "MB");
    }
    return UPLOADS / minutes;
  }
  const one = await throughput("1 converter");
  await system.start("converter", 1);
  await Promise.all([upload(), upload()].map(async (job) => followByPolling((await job).id))); // warms the new one, most likely
  const two = await throughput("2 converters");
  report(BENCH, "speed-up, 2 converters / 1", two / one, "x");
  reportLoad(BENCH, "end");
} finally {
  await system?.stop().catch((error) => process.stderr.write(`${(error as Error).message}\n`));
  if (previousMongoUrl === undefined) delete process.env.MONGODB_URL;
  else process.env.MONGODB_URL = previousMongoUrl;
  await stopAll();
  await mongoServer.stop();
  rmSync(work, { recursive: true, force: true });
}
