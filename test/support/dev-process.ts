// `bun run dev` (scripts/dev.ts) as a child process, as a developer runs it: its lines
// parsed (dev's own JSON, and each service's JSON behind its `name | ` prefix), waited on
// by `event`, and what it leaves behind (its services' pids and ports) checked after it.
import { connect } from "node:net";
import { resolve } from "node:path";
import type { Subprocess } from "bun";
import { AuthConfig } from "../../auth.ts";
import { ConverterConfig } from "../../converter.ts";
import { GatewayConfig } from "../../gateway.ts";
import { NotifierConfig } from "../../notifier.ts";
import { DevConfig } from "../../scripts/dev/config.ts";
import { type LogEntry, parseLine, readLines } from "./service-process.ts";

const ROOT = resolve(import.meta.dir, "../..");

/** Every variable dev or a service reads: the test's own environment never leaks into a run. */
const READ_BY_DEV = new Set(
  [DevConfig, AuthConfig, GatewayConfig, ConverterConfig, NotifierConfig].flatMap((schema) =>
    Object.keys(schema.properties),
  ),
);

export interface DevRun {
  child: Subprocess<"ignore", "pipe", "pipe">;
  /** Every line so far, parsed; `from` is the prefix's service name, or "dev" for dev's own lines. */
  entries: (LogEntry & { from: string })[];
  /** The exit code once dev has ended (its output read to the end). */
  exited: Promise<number>;
  /** The first entry (past or coming) that `match` accepts; rejects, with the output, if dev ends or `ms` pass first. */
  waitFor(match: (entry: LogEntry & { from: string }) => boolean, what: string, ms?: number): Promise<LogEntry>;
  /** Every line, for a failure message. */
  output(): string;
}

/** `bun scripts/dev.ts` with only `env` (and PATH, HOME...) of the test's environment; no .env file. */
export function runDev(env: Record<string, string>, script: string[] = ["scripts/dev.ts"]): DevRun {
  const inherited: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env))
    if (value !== undefined && !READ_BY_DEV.has(key) && key !== "PORT" && key !== "METRICS_PORT")
      inherited[key] = value;
  const child = Bun.spawn([process.execPath, "--no-env-file", ...script], {
    cwd: ROOT,
    env: { ...inherited, ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const lines: string[] = [];
  const entries: DevRun["entries"] = [];
  const waiters = new Set<() => void>();
  const onLine = (line: string) => {
    lines.push(line);
    const prefixed = /^(\w+)\s*\| (.*)$/.exec(line);
    entries.push({ ...parseLine(prefixed ? prefixed[2]! : line), from: prefixed ? prefixed[1]! : "dev" });
    for (const wake of waiters) wake();
  };
  const read = Promise.all([readLines(child.stdout, onLine), readLines(child.stderr, onLine)]);
  const exited = read.then(() => child.exited);
  const output = () => `--- bun run dev wrote ---\n${lines.join("\n")}`;

  const waitFor: DevRun["waitFor"] = (match, what, ms = 30_000) =>
    new Promise((resolveEntry, reject) => {
      let timer: Timer | undefined;
      const check = () => {
        const found = entries.find(match);
        if (!found) return;
        finish();
        resolveEntry(found);
      };
      const finish = () => {
        waiters.delete(check);
        clearTimeout(timer);
      };
      timer = setTimeout(() => {
        finish();
        reject(new Error(`no ${what} within ${ms} ms\n${output()}`));
      }, ms);
      void exited.then((code) => {
        check();
        if (!waiters.has(check)) return;
        finish();
        reject(new Error(`bun run dev exited (${code}) before ${what}\n${output()}`));
      });
      waiters.add(check);
      check();
    });
  return { child, entries, exited, waitFor, output };
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Whether anything accepts a TCP connection on 127.0.0.1:port. */
export function listening(port: number): Promise<boolean> {
  return new Promise((resolveOpen) => {
    const socket = connect({ host: "127.0.0.1", port });
    const done = (open: boolean) => {
      socket.destroy();
      resolveOpen(open);
    };
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}
