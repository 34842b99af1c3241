// Helpers every benchmark uses: print a figure, and measure latency percentiles
// of an async operation driven by N concurrent loops for a fixed time.
import { readFileSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { gatewayClient } from "../test/support/client.ts";
import { keptVideo, type VideoOptions } from "../test/support/media.ts";
import { dropTestDatabase, withDatabase } from "../test/support/mongo.ts";
import { createTestDatabase, type TestDatabase } from "../test/support/mysql.ts";
import { createTestVhost, type TestVhost } from "../test/support/rabbit.ts";

export function report(bench: string, metric: string, value: number, unit: string, goal?: string) {
  console.log(JSON.stringify({ bench, metric, value: Math.round(value * 100) / 100, unit, goal }));
}

export async function drive(concurrency: number, durationMs: number, operation: () => Promise<void>) {
  const latencies: number[] = [];
  const deadline = performance.now() + durationMs;
  let errors = 0;
  let firstError: string | undefined;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const start = performance.now();
        try {
          await operation();
          latencies.push(performance.now() - start);
        } catch (error) {
          errors++;
          firstError ??= (error as Error).message;
        }
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  if (latencies.length === 0) throw new Error(`every operation failed (${errors}), the first with: ${firstError}`);
  return {
    count: latencies.length,
    errors,
    firstError,
    perSecond: latencies.length / (durationMs / 1000),
    p50: at(0.5),
    p99: at(0.99),
  };
}

// ── processes, memory and media for the service benchmarks ──────────────────
// Services run as real processes (`bun <name>.ts`), so their memory is their own
// and can be read from /proc; everything listens on 127.0.0.1 only.

export const ROOT = join(import.meta.dir, "..");
export const MiB = 1024 * 1024;

/** A free TCP port on 127.0.0.1 (free now; the caller binds it right away). */
export function freePort(): number {
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
  const port = server.port!;
  server.stop(true);
  return port;
}

export interface Proc {
  pid: number;
  child: Bun.Subprocess;
  /** The last lines it printed (stdout and stderr), for a failure message. */
  logs: string[];
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
}

function keepLines(
  stream: ReadableStream<Uint8Array> | null | undefined,
  logs: string[],
  onLine?: (line: string) => void,
) {
  if (!stream) return;
  void (async () => {
    const decoder = new TextDecoder();
    let pending = "";
    for await (const chunk of stream) {
      const lines = (pending + decoder.decode(chunk, { stream: true })).split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        onLine?.(line);
        logs.push(line);
        if (logs.length > 200) logs.shift();
      }
    }
  })().catch(() => {});
}

const running = new Set<Proc>();
/** Every process a benchmark started and has not stopped (but the MongoDB stand-in: stop that last, yourself). */
export async function stopAll() {
  await Promise.all([...running].map((proc) => proc.stop(2000)));
}
// However a benchmark ends (an uncaught error, Ctrl-C), no process it started outlives it.
const started = new Set<Bun.Subprocess>();
process.on("exit", () => {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
});

export function spawnProcess(
  command: string[],
  env: Record<string, string> = {},
  onLine?: (line: string) => void,
): Proc {
  const logs: string[] = [];
  const child = Bun.spawn(command, { cwd: ROOT, env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
  keepLines(child.stdout as ReadableStream<Uint8Array>, logs, onLine);
  keepLines(child.stderr as ReadableStream<Uint8Array>, logs, onLine);
  started.add(child);
  const proc: Proc = {
    pid: child.pid,
    child,
    logs,
    async stop(graceMs = 5000) {
      running.delete(proc);
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      await child.exited;
      clearTimeout(timer);
    },
  };
  running.add(proc);
  return proc;
}

export interface Service extends Proc {
  name: string;
  port: number;
  url: string;
}

/** Every variable the services read, so a benchmark's own environment cannot leak into them. */
async function serviceVariables(): Promise<Set<string>> {
  const modules = await Promise.all([
    import("../auth.ts"),
    import("../gateway.ts"),
    import("../converter.ts"),
    import("../notifier.ts"),
  ]);
  const schemas = [
    modules[0].AuthConfig,
    modules[1].GatewayConfig,
    modules[2].ConverterConfig,
    modules[3].NotifierConfig,
  ];
  return new Set(schemas.flatMap((schema) => Object.keys(schema.properties)));
}

/**
 * Starts `bun <name>.ts` on a free port, configured by `env` alone (no `.env` file, none
 * of the benchmark's own service variables), and waits until `/health/live` answers.
 */
export async function startService(name: string, env: Record<string, string>, timeoutMs = 20_000): Promise<Service> {
  const port = freePort();
  const inherited = await serviceVariables();
  const clean = Object.fromEntries(
    Object.keys(process.env)
      .filter((key) => inherited.has(key))
      .map((key) => [key, undefined]),
  );
  // BENCH_PROFILE=<service>: that service writes a CPU profile (markdown) into $TMPDIR when it stops.
  const profile = process.env.BENCH_PROFILE === name ? ["--cpu-prof-md", `--cpu-prof-dir=${tmpdir()}`] : [];
  const proc = spawnProcess([process.execPath, ...profile, "--no-env-file", `${name}.ts`], {
    ...clean,
    LOG_LEVEL: "warn",
    ...env,
    PORT: String(port),
    METRICS_PORT: String(freePort()), // two converters on one machine must not share the default
  } as Record<string, string>);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.child.exitCode !== null)
      throw new Error(`${name} exited (${proc.child.exitCode}):\n${proc.logs.join("\n")}`);
    const live = await fetch(`${url}/health/live`).then(
      (r) => r.ok,
      () => false,
    );
    if (live) return { ...proc, stop: proc.stop, name, port, url };
    if (Date.now() > deadline) {
      await proc.stop();
      throw new Error(`${name} did not answer on ${url} within ${timeoutMs} ms:\n${proc.logs.join("\n")}`);
    }
    await Bun.sleep(50);
  }
}

/** The MongoDB stand-in in a process of its own (its memory is not the service's); MONGODB_URL instead when set. */
export async function startMongo(): Promise<{ url: string; kind: string; stop(): Promise<void> }> {
  if (process.env.MONGODB_URL) {
    process.stderr.write("MongoDB: the server at MONGODB_URL\n");
    return { url: process.env.MONGODB_URL, kind: "MongoDB at MONGODB_URL", stop: async () => {} };
  }
  process.stderr.write("MongoDB: the in-memory stand-in, in a process of its own (set MONGODB_URL for a real one)\n");
  let resolveUrl!: (url: string) => void;
  const first = new Promise<string>((resolve) => (resolveUrl = resolve));
  const proc = spawnProcess([process.execPath, "test/support/mongo-standin.ts", "--port", "0"], {}, (line) => {
    if (line.startsWith("mongodb://")) resolveUrl(line.trim());
  });
  running.delete(proc); // outlives stopAll(), so services can be stopped while it still answers
  const url = await Promise.race([
    first,
    Bun.sleep(10_000).then(() => Promise.reject(new Error(`mongo stand-in did not start:\n${proc.logs.join("\n")}`))),
  ]);
  return {
    url,
    kind: "the in-memory MongoDB stand-in (test/support/mongo-standin.ts), in a process of its own",
    stop: () => proc.stop(),
  };
}

export interface Memory {
  rss: number; // bytes resident now (VmRSS)
  hwm: number; // peak resident since start or the last resetPeak (VmHWM)
}

/** VmRSS and VmHWM of a process, in bytes; null once it is gone. */
export function readMemory(pid: number): Memory | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0) * 1024;
    return { rss: kib("VmRSS"), hwm: kib("VmHWM") };
  } catch {
    return null;
  }
}

/**
 * CPU time (ms) a process has used, `own` and that of its children it has waited for
 * (`children`: a converter's ffmpeg and ffprobe, a benchmark's bare ffmpeg), from
 * /proc/<pid>/stat. CPU time, unlike wall time, hardly changes with other work on the
 * machine. Clock ticks of 10 ms (USER_HZ 100).
 */
export function cpuMs(pid: number | "self"): { own: number; children: number } {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(")").pop()!.trim().split(" ");
  // After the name: state ppid ... utime (14th field overall) stime cutime cstime.
  const tick = (index: number) => Number(fields[index - 3]) * 10;
  return { own: tick(14) + tick(15), children: tick(16) + tick(17) };
}

/** Resets VmHWM to the current RSS (Linux ≥ 4.0, `clear_refs` 5), so a peak belongs to one phase. */
export function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

/** Samples VmRSS every `intervalMs`; `stop()` answers the highest sample and the kernel's VmHWM. */
export function sampleMemory(pids: number[], intervalMs = 50) {
  const peaks = new Map<number, number>(pids.map((pid) => [pid, readMemory(pid)?.rss ?? 0]));
  const sample = () => {
    for (const pid of pids) {
      const memory = readMemory(pid);
      if (memory && memory.rss > peaks.get(pid)!) peaks.set(pid, memory.rss);
    }
  };
  const timer = setInterval(sample, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return new Map(pids.map((pid) => [pid, { peakRss: peaks.get(pid)!, hwm: readMemory(pid)?.hwm ?? NaN }]));
    },
  };
}

/**
 * `work` with `pid`'s peak reset before and sampled meanwhile; answers its result, the peak
 * RSS (bytes) it saw and the CPU time (ms, all threads) `pid` used meanwhile.
 */
export async function peakRssDuring<T>(
  pid: number,
  work: () => Promise<T>,
): Promise<{ result: T; peak: number; cpu: number }> {
  resetPeak(pid);
  const sampler = sampleMemory([pid], 50);
  const cpuBefore = cpuMs(pid).own;
  try {
    const result = await work();
    const memory = sampler.stop().get(pid)!;
    return { result, peak: Math.max(memory.peakRss, memory.hwm), cpu: cpuMs(pid).own - cpuBefore };
  } catch (error) {
    sampler.stop();
    throw error;
  }
}

/** Runs a command to completion; throws with its stderr on failure; answers the wall time in ms. */
async function run(command: string[]): Promise<number> {
  const started = performance.now();
  const child = Bun.spawn(command, { cwd: ROOT, stdout: "ignore", stderr: "pipe" });
  const [code, err] = await Promise.all([child.exited, new Response(child.stderr).text()]);
  if (code !== 0) throw new Error(`${command.join(" ")} failed (${code}): ${err.slice(-2000)}`);
  return performance.now() - started;
}

/**
 * A video's audio as an MP3 by ffmpeg alone, into `output`: what the converter did before
 * options, without a cover or tags (`audio` adds options, e.g. a filter). Answers the wall time in ms.
 */
export function bareFfmpeg(input: string, output: string, audio: string[] = []): Promise<number> {
  const mp3 = ["-vn", ...audio, "-c:a", "libmp3lame", "-q:a", "2"]; // as the benchmarks' converters (MP3_QUALITY=2)
  return ffmpegTime(["-i", input, ...mp3, output]);
}

/**
 * The converter's default for a video by ffmpeg alone, as a person would do it: the keyframe
 * at or before `coverAtSec` as a JPEG at most 600 px wide, then the MP3 with that picture as
 * its front cover and a title, in ID3v2.3. (One command with the video as a second input
 * reads the whole file twice: 2.1x the time of the audio alone here.) Answers the wall time in ms.
 */
export async function bareFfmpegWithCover(input: string, output: string, coverAtSec: number): Promise<number> {
  const cover = `${output}.jpg`;
  const frame = ["-noaccurate_seek", "-skip_frame", "nokey", "-ss", String(coverAtSec), "-i", input];
  const scaled = ["-map", "0:v:0", "-fps_mode", "passthrough", "-frames:v", "1", "-vf", "scale=w='min(600,iw)':h=-2"];
  const picture = ["-c:v", "copy", "-disposition:v", "attached_pic", "-metadata:s:v", "comment=Cover (front)"];
  const tags = ["-map_metadata", "-1", "-metadata", "title=bench", "-id3v2_version", "3"];
  return (
    (await ffmpegTime([...frame, ...scaled, "-q:v", "3", "-f", "mjpeg", cover])) +
    (await ffmpegTime([
      "-i",
      input,
      "-i",
      cover,
      "-map",
      "0:a:0",
      "-map",
      "1:v:0",
      "-c:a",
      "libmp3lame",
      "-q:a",
      "2",
      ...picture,
      ...tags,
      output,
    ]))
  );
}

/** ffmpeg with `args` (quiet, overwriting); answers the wall time in ms. */
export const ffmpegTime = (args: string[]): Promise<number> =>
  run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", ...args]);

export const MEDIA_DIR = join(tmpdir(), "m3dio-bench-media");

/**
 * A test video (test/support/media.ts) made once and kept under the temp dir, so reruns
 * skip the encoding (delete MEDIA_DIR to reclaim the space).
 */
export const cachedVideo = (name: string, options: VideoOptions) =>
  keptVideo(MEDIA_DIR, name, options, (path, ms) =>
    process.stderr.write(`made ${name} in ${(ms / 1000).toFixed(1)} s (kept at ${path})\n`),
  );

/** testsrc video with a sine tone: `seconds` long, `size`, H.264 ultrafast + AAC in MP4 (index at the end, as cameras write it). */
export const testClip = (seconds: number, size = "1280x720", rate = 30) =>
  cachedVideo(`clip-${seconds}s-${size}`, { seconds, size, rate });

export const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/**
 * The machine's 1-minute load average, as a figure: timings taken while other work
 * runs on the same cores (a test suite, a browser) read differently, so each service
 * benchmark reports it at its start and end.
 */
export function reportLoad(bench: string, when: "start" | "end") {
  report(bench, `load average (1 min) at ${when}, ${navigator.hardwareConcurrency} cores`, loadavg()[0]!, "");
}

/**
 * The stores a bench's gateway needs, and auth: MongoDB (its own database), a RabbitMQ
 * vhost and a MySQL database of their own, and auth running on them. `stop()` stops every
 * service started through startService, then drops and stops the stores.
 */
export async function startBenchStack() {
  const mongo = await startMongo();
  const mongoUrl = withDatabase(mongo.url, `m3dio_bench_${process.pid}`);
  const stores: { vhost?: TestVhost; database?: TestDatabase } = {};
  const stop = async () => {
    await stopAll();
    await stores.vhost?.drop();
    await stores.database?.drop();
    if (process.env.MONGODB_URL) await dropTestDatabase(mongoUrl).catch(() => {});
    await mongo.stop();
  };
  try {
    stores.vhost = await createTestVhost();
    stores.database = await createTestDatabase();
    const auth = await startService("auth", { MYSQL_URL: stores.database.url });
    return { mongoUrl, vhost: stores.vhost, auth, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * The gateway of the upload benches, as a process on a startBenchStack's stores and auth,
 * taking bodies up to twice `uploadBytes`; one user logged in whose quotas keep every upload
 * of the bench (none is converted); the small real MP4 each upload starts with (the gateway
 * sniffs the first bytes for a video signature). Reports the gateway's RSS at rest.
 */
export async function startUploadGateway(
  bench: string,
  { mongoUrl, vhost, auth }: Pick<Awaited<ReturnType<typeof startBenchStack>>, "mongoUrl" | "vhost" | "auth">,
  uploadBytes: number,
) {
  const gateway = await startService("gateway", {
    AUTH_URL: auth.url,
    MONGODB_URL: mongoUrl,
    AMQP_URL: vhost.url,
    MAX_UPLOAD_BYTES: String(2 * uploadBytes),
    MAX_ACTIVE_JOBS: "100",
    USER_STORAGE_BYTES: String(16 * uploadBytes),
  });
  const { authorization } = (await gatewayClient(gateway.url).newUser("bench")).headers;
  const header = readFileSync(await cachedVideo("header-1s-160x90", { seconds: 1, faststart: true }));
  const rest = readMemory(gateway.pid)!.rss;
  report(bench, "gateway RSS at rest (after login)", rest / 1e6, "MB");
  return { gateway, base: gateway.url, authorization, header, rest };
}
