// One lifecycle for every service. A service is `{ app, start(), stop() }`: `app` is
// its Elysia app (the API, or health and metrics for a worker), `start()` begins its
// work (consuming, loading keys) and `stop()` stops taking work and finishes or hands
// back what it holds. `runService` is the whole of a service's `import.meta.main`:
// it parses the config, opens the connections, starts, listens, and on SIGTERM/SIGINT
// stops in one order: the service's own stop, then its HTTP server (requests in
// flight finish, bounded), then its connections in reverse order of opening. A stop
// that takes longer than the hard deadline exits anyway (code 1), so an orchestrator
// never has to SIGKILL a process that hangs on a broken connection.
import type { Static, TObject } from "@sinclair/typebox";
import type { AnyElysia } from "elysia";
import { pendingCleanUps } from "./cleanup.ts";
import { loadConfig } from "./config.ts";
import { createLogger, type Logger, type LogLevel } from "./log.ts";
import { stopServing } from "./shutdown.ts";

export interface Service {
  app: AnyElysia;
  /** Begins the service's work; resolves once it is ready for traffic. */
  start(): Promise<void>;
  /** Stops taking work and finishes (or hands back) what is in hand. */
  stop(): Promise<void>;
}

/** Something `runService` closes at the end (a store or broker connection). */
export interface Closable {
  close(): Promise<unknown>;
}

export interface Built {
  service: Service;
  /** Connections the build opened, in the order it opened them; closed in reverse. */
  resources: Closable[];
}

export interface RunOptions {
  /** Time requests in flight get once the service has stopped (20 s for an API, 1 s for a worker's health port). */
  httpGraceMs?: number;
  /** Longest the whole stop may take before the process exits anyway. */
  deadlineMs: number;
}

type Config = { PORT: number; LOG_LEVEL: LogLevel };

/** Runs a service as a process: see the file's header. */
export async function runService<S extends TObject>(
  name: string,
  schema: S,
  build: (config: Static<S> & Config, log: Logger) => Promise<Built>,
  options: (config: Static<S> & Config) => RunOptions,
): Promise<void> {
  const config = loadConfig(schema) as Static<S> & Config;
  const log = createLogger(name, config.LOG_LEVEL);
  const { service, resources } = await build(config, log);
  await service.start();
  service.app.listen({ port: config.PORT, hostname: "0.0.0.0" });
  log.info({ event: "service.listening", port: service.app.server?.port }, `${name} listening`);
  const { httpGraceMs = 20_000, deadlineMs } = options(config);
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ event: "service.stopping", signal, deadlineMs }, "stopping");
    const deadline = setTimeout(() => {
      log.error({ event: "service.stop_deadline", deadlineMs }, "did not stop within the deadline; exiting anyway");
      process.exit(1);
    }, deadlineMs);
    deadline.unref();
    await service.stop();
    await stopServing(service.app, { log, graceMs: httpGraceMs });
    for (const resource of resources.toReversed()) {
      await resource.close().catch((error) => log.warn({ err: error }, "a connection did not close cleanly"));
    }
    const abandoned = pendingCleanUps();
    if (abandoned.length) log.warn({ event: "cleanup.abandoned", abandoned }, "clean-ups still pending at exit");
    log.info({ event: "service.stopped" }, "stopped");
    process.exit(0);
  };
  process.once("SIGTERM", () => void stop("SIGTERM"));
  process.once("SIGINT", () => void stop("SIGINT"));
}
