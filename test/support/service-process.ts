// One service of m3dio as a child process, as test/support/system.ts runs them: what
// is kept of it (its output lines, its exit), and the small helpers for reading that
// output, waiting with a bound and choosing ports.
import { createServer } from "node:net";
import type { Subprocess } from "bun";

export type ServiceName = "auth" | "gateway" | "converter" | "notifier";

const LOG_TAIL = 60;

export interface ServiceProcess {
  name: ServiceName;
  /** 0 for every service but the converters, which are numbered from 0. */
  index: number;
  port: number;
  /** `http://127.0.0.1:<port>` (health alone for the workers). */
  url: string;
  /** `http://127.0.0.1:<METRICS_PORT>`, where GET /metrics answers. */
  metricsUrl: string;
  child: Subprocess<"ignore", "pipe", "pipe">;
  /** Every line the process wrote, stdout (pino JSON) and stderr (e.g. a config error or a crash), in order. */
  logs: string[];
  /** Resolves with the exit code (128 + signal number when killed by a signal) once the process ended. */
  exited: Promise<number>;
}

/**
 * A parsed log line; non-JSON lines (stderr) come as `{ msg: line, raw: true }`. Tests match
 * on `event` (`area.happening`, e.g. "job.converting"), never on the wording in `msg`.
 */
export interface LogEntry {
  event?: string;
  msg?: string;
  level?: string;
  service?: string;
  raw?: boolean;
  [field: string]: unknown;
}

export function isRunning(service: ServiceProcess): boolean {
  return service.child.exitCode === null && service.child.signalCode === null;
}

export function nameOf(service: ServiceProcess): string {
  return `${service.name}${service.name === "converter" ? ` #${service.index}` : ""} (pid ${service.child.pid}, port ${service.port})`;
}

export function tail(service: ServiceProcess): string {
  const lines = service.logs.slice(-LOG_TAIL);
  return lines.length
    ? `--- last ${lines.length} log lines of ${service.name} ---\n${lines.join("\n")}`
    : `--- ${service.name} wrote nothing ---`;
}

export function parseLine(line: string): LogEntry {
  try {
    const value = JSON.parse(line);
    if (value && typeof value === "object") return value as LogEntry;
  } catch {}
  return { msg: line, raw: true };
}

export async function readLines(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of stream) {
    const lines = (pending + decoder.decode(chunk, { stream: true })).split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) if (line.trim()) onLine(line);
  }
  if (pending.trim()) onLine(pending);
}

/** The value if `promise` settles within `ms`, else undefined. */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: Timer | undefined;
  const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A port nothing listens on (bound on all interfaces, as the services bind, then released). */
export async function freePort(avoid: number[]): Promise<number> {
  for (let tries = 0; tries < 20; tries++) {
    const port = await new Promise<number>((resolvePort, reject) => {
      const server = createServer();
      server.once("error", reject);
      server.listen(0, "0.0.0.0", () => {
        const address = server.address();
        const chosen = typeof address === "object" && address ? address.port : 0;
        server.close(() => resolvePort(chosen));
      });
    });
    if (port && !avoid.includes(port)) return port;
  }
  throw new Error("system: could not find a free port");
}
