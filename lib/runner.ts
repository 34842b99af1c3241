// One lifecycle for every service. A service is `{ app, metricsApp, start(), stop() }`:
// `app` is its Elysia app (the API, or health for a worker), `metricsApp` serves
// GET /metrics, `start()` begins its work (consuming, loading keys) and `stop()` stops
// taking work and finishes or hands back what it holds. `runService` is the whole of a
// service's `import.meta.main`: it parses the config, makes the connections (which do not
// wait for their stores), listens (`app` on PORT, `metricsApp` on METRICS_PORT, which no
// Ingress or published port leads to), then starts. A store or broker that is not there yet
// is no reason to exit: on an orchestrator that only means a crash loop whose back-off
// outlasts the stores' own start. `start()` is tried again with backoff until it succeeds;
// meanwhile the service is live but not ready (lib/health.ts startupCheck says why).
// On SIGTERM/SIGINT it stops in one order: the service's own stop,
// then its HTTP servers (requests in flight finish, bounded), then its connections in
// reverse order of opening. A stop
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
  /** GET /metrics (lib/metrics.ts), listened on at METRICS_PORT. */
  metricsApp: AnyElysia;
  /** Begins the service's work; resolves once it is ready for traffic. Tried again while it fails. */
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

type Config = { PORT: number; METRICS_PORT: number; LOG_LEVEL: LogLevel };

/** Runs a service as a process: see the file's header. */
export async function runService<S extends TObject>(
  name: string,
  schema: S,
  build: (config: Static<S> & Config, log: Logger) => Promise<Built>,
  options: (config: Static<S> & Config) => RunOptions,
): Promise<void> {
  const config = loadConfig(schema) as Static<S> & Config;
  if (config.METRICS_PORT === config.PORT && config.PORT !== 0) {
    process.stderr.write(`${JSON.stringify({ level: "fatal", msg: "config: METRICS_PORT must differ from PORT" })}\n`);
    process.exit(78); // EX_CONFIG, as for any other bad variable
  }
  const log = createLogger(name, config.LOG_LEVEL);
  const { service, resources } = await build(config, log);
  service.app.listen({ port: config.PORT, hostname: "0.0.0.0" });
  service.metricsApp.listen({ port: config.METRICS_PORT, hostname: "0.0.0.0" });
  const ports = { port: service.app.server?.port, metricsPort: service.metricsApp.server?.port };
  log.info({ event: "service.listening", ...ports }, `${name} listening`);
  const { httpGraceMs = 20_000, deadlineMs } = options(config);
  let stopping = false;
  void startUntilStarted(service, log, () => stopping);
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
    await stopServing(service.metricsApp, { log, graceMs: 1000 });
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

/** Longest pause between two tries of `start()`. */
const START_RETRY_MAX_MS = 10_000;

/**
 * Tries `start()` until it succeeds (or the service is stopping), waiting 0.5 s, then twice as
 * long each time, at most 10 s: one `service.start_failed` line per try, `service.started` at the end.
 */
async function startUntilStarted(service: Service, log: Logger, stopping: () => boolean): Promise<void> {
  for (let attempt = 1, delayMs = 500; !stopping(); attempt++, delayMs = Math.min(delayMs * 2, START_RETRY_MAX_MS)) {
    try {
      await service.start();
      log.info({ event: "service.started", attempt }, "started: ready for work");
      return;
    } catch (error) {
      if (stopping()) return;
      const retryInMs = delayMs;
      log.warn({ event: "service.start_failed", attempt, retryInMs, err: error }, "could not start yet; trying again");
      await Bun.sleep(retryInMs);
    }
  }
}
