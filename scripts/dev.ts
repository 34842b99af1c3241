// `bun run dev`: every service in one terminal, restarted on change (bun --watch), each
// line prefixed with the service's name; Ctrl-C stops them all. Before starting any:
//   - MySQL and RabbitMQ must answer (else one line and exit 1); the migrations are
//     applied here, so a fresh database works (README: "For development");
//   - MongoDB is MONGODB_URL, a local one on 27017, or else the in-memory stand-in
//     (started here, stopped with dev, its data lost);
//   - auth's signing key is made once into DEV_DIR (`.dev/`), so a restart of auth (every
//     edit) keeps everyone logged in; so is the link signing key of the gateway and the notifier.
// Ports: AUTH_PORT, GATEWAY_PORT, CONVERTER_PORT, NOTIFIER_PORT and their *_METRICS_PORT
// (scripts/dev/config.ts); a global PORT or METRICS_PORT is ignored with a warning.
// dev's own lines are JSON with `service: "dev"` and an `event` (`dev.*`).
import { resolve } from "node:path";
import type { Subprocess } from "bun";
import { createLogger } from "../lib/log.ts";
import { generateLinkSigningKey } from "../lib/signed-links.ts";
import { type DevConfig, type DevService, isSet, loadDevConfig, SERVICES, servicePorts } from "./dev/config.ts";
import { devSecret, generateSigningKeyPem } from "./dev/secrets.ts";
import { checkRabbitmq, chooseMongo, type DevMongo, prepareMysql, StoreUnreachable, shown } from "./dev/stores.ts";

const ROOT = resolve(import.meta.dir, "..");
const DEFAULT_PUBLIC_URL = "http://localhost:8080";
const STOP_DEADLINE_MS = 30_000;
const COLOURS: Record<DevService, string> = {
  auth: "\x1b[36m",
  gateway: "\x1b[35m",
  converter: "\x1b[33m",
  notifier: "\x1b[32m",
};
const RESET = "\x1b[0m";
const WIDTH = Math.max(...SERVICES.map((name) => name.length));

interface Running {
  name: DevService;
  child: Subprocess<"ignore", "pipe", "pipe">;
  /** Resolves at the service's `service.listening` line (never, if it does not get there). */
  listening: Promise<void>;
  /** Resolves once all its output is written out. */
  drained: Promise<unknown>;
}

const config = loadDevConfig();
const log = createLogger("dev", config.LOG_LEVEL);
warnIgnoredPorts(process.env);
await prepareStores(config);
const mongo = await chooseMongo(config.MONGODB_URL, log);
const environments = await serviceEnvironments(config, mongo);
const running: Running[] = [];
let stopping = false;
process.on("SIGINT", () => void stopAll("SIGINT", 0));
process.on("SIGTERM", () => void stopAll("SIGTERM", 0));
await startServices();

/** A global PORT would give all four services one port: each gets its own instead. */
function warnIgnoredPorts(env: Record<string, string | undefined>): void {
  for (const variable of ["PORT", "METRICS_PORT"]) {
    if (!isSet(env, variable)) continue;
    const instead = SERVICES.map((name) => `${name.toUpperCase()}_${variable}`).join(", ");
    log.warn(
      { event: "dev.port_ignored", variable, value: env[variable], instead },
      `${variable}=${env[variable]} is ignored by bun run dev (it would put every service on one port); set ${instead}`,
    );
  }
}

/** RabbitMQ and MySQL answer and the database is migrated; else one fatal line and exit 1. */
async function prepareStores({ AMQP_URL, MYSQL_URL }: DevConfig): Promise<void> {
  try {
    await checkRabbitmq(AMQP_URL);
    await prepareMysql(MYSQL_URL);
    log.info({ event: "dev.migrated", mysql: shown(MYSQL_URL) }, "database migrations applied");
  } catch (error) {
    const unreachable = error instanceof StoreUnreachable;
    log.fatal(
      unreachable
        ? { event: "dev.store_unreachable", store: error.store, variable: error.variable, url: error.url }
        : { event: "dev.migration_failed", mysql: shown(MYSQL_URL), err: error },
      unreachable ? error.message : `migrations failed: ${(error as Error).message}`,
    );
    process.exit(1);
  }
}

/** What each service gets: the environment dev was given, with its ports, its stores and its keys. */
async function serviceEnvironments(
  config: DevConfig,
  mongo: DevMongo,
): Promise<Record<DevService, Record<string, string>>> {
  const shared: Record<string, string> = { ...(process.env as Record<string, string>), MONGODB_URL: mongo.url };
  const authUrl = `http://127.0.0.1:${config.AUTH_PORT}`;
  if (isSet(process.env, "AUTH_URL") && process.env.AUTH_URL !== authUrl)
    log.warn(
      { event: "dev.setting_ignored", variable: "AUTH_URL", value: process.env.AUTH_URL, instead: authUrl },
      `AUTH_URL is ignored by bun run dev: the gateway uses the auth it starts, ${authUrl} (AUTH_PORT)`,
    );
  const publicUrl =
    config.PUBLIC_URL && config.PUBLIC_URL !== DEFAULT_PUBLIC_URL
      ? config.PUBLIC_URL
      : `http://localhost:${config.GATEWAY_PORT}`;
  // The gateway checks the download links the notifier signs: one key for both, kept in DEV_DIR.
  const links: Record<string, string> = isSet(process.env, "LINK_SIGNING_KEY")
    ? {}
    : {
        LINK_SIGNING_KEY: (await devSecret(resolve(ROOT, config.DEV_DIR), "link-signing-key", generateLinkSigningKey))
          .value,
      };
  const extra: Record<DevService, Record<string, string>> = {
    auth: await signingKey(config),
    gateway: { AUTH_URL: authUrl, PUBLIC_URL: publicUrl, ...links },
    converter: {},
    notifier: { PUBLIC_URL: publicUrl, ...links },
  };
  const ports = servicePorts(config);
  const environment = (name: DevService) => ({
    ...shared,
    ...extra[name],
    PORT: String(ports[name].port),
    METRICS_PORT: String(ports[name].metricsPort),
  });
  return {
    auth: environment("auth"),
    gateway: environment("gateway"),
    converter: environment("converter"),
    notifier: environment("notifier"),
  };
}

/** The configured key stays; without one, the key kept in DEV_DIR (made at the first start). */
async function signingKey(config: DevConfig): Promise<Record<string, string>> {
  if (isSet(process.env, "JWT_PRIVATE_KEY") || isSet(process.env, "JWT_PRIVATE_KEY_FILE")) return {};
  const key = await devSecret(resolve(ROOT, config.DEV_DIR), "jwt-private-key.pem", generateSigningKeyPem);
  log.info(
    { event: key.created ? "dev.secret_created" : "dev.secret_kept", variable: "JWT_PRIVATE_KEY_FILE", path: key.path },
    `auth signs tokens with ${key.path}${key.created ? " (new)" : ""}; tokens outlive restarts`,
  );
  return { JWT_PRIVATE_KEY_FILE: key.path };
}

/** auth, the converter and the notifier at once; the gateway once auth listens, so it finds auth's keys. */
async function startServices(): Promise<void> {
  const auth = start("auth");
  start("converter");
  start("notifier");
  await Promise.race([auth.listening, auth.child.exited]);
  if (!stopping) start("gateway");
}

function start(name: DevService): Running {
  const env = environments[name];
  // --no-env-file: dev has read .env already, and what it sets (PORT, AUTH_URL) must win.
  const child = Bun.spawn([process.execPath, "--no-env-file", "--watch", `${name}.ts`], {
    cwd: ROOT,
    env,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const prefix = process.stdout.isTTY ? `${COLOURS[name]}${name.padEnd(WIDTH)} |${RESET} ` : `${name.padEnd(WIDTH)} | `;
  let listened: () => void = () => {};
  const listening = new Promise<void>((resolve) => (listened = resolve));
  const onLine = (line: string) => {
    if (line.includes('"service.listening"')) listened();
  };
  const drained = Promise.all([
    pipeLines(child.stdout, prefix, process.stdout, onLine),
    pipeLines(child.stderr, prefix, process.stderr, onLine),
  ]);
  const service = { name, child, listening, drained };
  running.push(service);
  log.info(
    {
      event: "dev.service_started",
      name,
      pid: child.pid,
      port: Number(env.PORT),
      metricsPort: Number(env.METRICS_PORT),
    },
    `${name} started on port ${env.PORT} (metrics ${env.METRICS_PORT})`,
  );
  void child.exited.then((code) => onExit(service, code));
  return service;
}

/** A service ending by itself (not a watch restart: that keeps the process) is worth a line; all ended, dev ends. */
function onExit(service: Running, code: number): void {
  if (stopping) return;
  log.error({ event: "dev.service_exited", name: service.name, code }, `${service.name} exited with code ${code}`);
  if (running.every(({ child }) => child.exitCode !== null || child.signalCode !== null)) void stopAll("exit", 1);
}

async function pipeLines(
  stream: ReadableStream<Uint8Array>,
  prefix: string,
  out: NodeJS.WriteStream,
  onLine: (line: string) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of stream) {
    const lines = (pending + decoder.decode(chunk, { stream: true })).split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) {
      onLine(line);
      out.write(`${prefix}${line}\n`);
    }
  }
  if (pending) out.write(`${prefix}${pending}\n`);
}

/** SIGTERM to every service, wait for them (SIGKILL past the deadline), then the stand-in; exit. */
async function stopAll(signal: string, code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  log.info({ event: "dev.stopping", signal }, "stopping every service");
  for (const { child } of running) if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
  const deadline = setTimeout(() => {
    log.error({ event: "dev.stop_deadline", deadlineMs: STOP_DEADLINE_MS }, "services did not stop in time: killed");
    for (const { child } of running) child.kill("SIGKILL");
  }, STOP_DEADLINE_MS);
  await Promise.all(running.map(({ child, drained }) => Promise.all([child.exited, drained])));
  clearTimeout(deadline);
  await mongo.stop();
  log.info({ event: "dev.stopped" }, "every service stopped");
  await new Promise((resolve) => process.stdout.write("", resolve));
  process.exit(code);
}
