// The whole of m3dio as real processes, for end-to-end tests, benchmarks and
// fault injection: each service runs as `bun <name>.ts` from the repository root,
// configured only by environment variables, against stores of its own:
//
//   MySQL      a fresh database (createTestDatabase, migrated here), dropped by stop()
//   RabbitMQ   a fresh virtual host (createTestVhost), deleted by stop()
//   MongoDB    a fresh database (testMongoUrl: MONGODB_URL or the in-process stand-in), dropped by stop()
//   Resend     a stand-in in this process (startResendStandin), unless `resend: false`
//
// For fault tests, `proxy: { mongodb: true, rabbitmq: true, mysql: true }` puts a TCP proxy
// (test/support/tcp-proxy.ts) between the services and that store: the services get
// the proxy's address, the test cuts and restores it (`system.proxies.mongodb.cut()`),
// while `mongoUrl`/`amqpUrl` stay the direct addresses, so the test itself can still
// look at the stores during the cut. `mongoServer` names a MongoDB server to use
// instead of MONGODB_URL or the in-process stand-in (e.g. a stand-in in a process of
// its own); the system still gets a fresh database on it.
//
//   const system = await startSystem({ converters: 2 });
//   afterAll(() => system.stop());
//   await fetch(`${system.gatewayUrl}/auth/register`, ...);
//   await system.kill(system.service("converter", 1), "SIGKILL");   // fault injection
//   await system.start("converter", 1);                              // and back, same port
//
// Every service gets a port of its own, chosen free once and kept across restarts,
// so URLs (gatewayUrl, AUTH_URL, PUBLIC_URL) stay valid when a service is restarted.
// Start order: auth, then the gateway (it needs auth's keys), then the converters and
// the notifier; each must answer 200 on /health/ready before `startSystem` resolves.
//
// Output: every line a service writes (stdout and stderr) is kept in its `logs`;
// with LOG_LEVEL=debug (or trace) in the test's environment the services log at that
// level and their lines are also copied to the test's stderr, prefixed with the name.
// Otherwise services log at `info`, so the captured lines say what happened.
//
// MongoDB: without MONGODB_URL the stand-in runs inside the calling process (that is
// how testMongoUrl works), so never block that process's event loop (Bun.spawnSync,
// Atomics.wait, long synchronous loops) while the services work: they would stall on it.
//
// auth hashes passwords with argon2id at the tests' cheap cost (test/support/auth.ts):
// every user a test registers and logs in would otherwise cost two full-price hashes;
// its per-address limits are out of reach (every test client is 127.0.0.1), and the
// gateway and auth share a GATEWAY_SECRET, as deployed.
//
// The services do not see the test's own environment for anything they read
// (every variable of the four config schemas is removed first) nor a `.env` file
// (`--no-env-file`): only what is set here and in `options.env`.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import * as jose from "jose";
import { AuthConfig } from "../../auth.ts";
import { ConverterConfig } from "../../converter.ts";
import { GatewayConfig } from "../../gateway.ts";
import { NotifierConfig } from "../../notifier.ts";
import { TEST_AUTH_ENV, TEST_GATEWAY_SECRET } from "./auth.ts";
import { dropTestDatabase, testMongoUrl, withDatabase } from "./mongo.ts";
import { createTestDatabase, type TestDatabase } from "./mysql.ts";
import { createTestVhost, type TestVhost } from "./rabbit.ts";
import { startResendStandin } from "./resend.ts";
import {
  freePort,
  isRunning,
  type LogEntry,
  nameOf,
  parseLine,
  readLines,
  type ServiceName,
  type ServiceProcess,
  tail,
  within,
} from "./service-process.ts";
import { startTcpProxy, type TcpProxy } from "./tcp-proxy.ts";

export type { LogEntry, ServiceName, ServiceProcess };

export const SERVICE_NAMES: readonly ServiceName[] = ["auth", "gateway", "converter", "notifier"];
/** LINK_SIGNING_KEY of the system's gateway and notifier: one key, so emailed download links open. */
const TEST_LINK_SIGNING_KEY = "system-test-link-signing-key-0123456789";

export interface SystemOptions {
  /** Converter processes to start (1). More can be added later with `start("converter", n)`. */
  converters?: number;
  /** Extra or overriding environment variables per service; they win over the defaults here, except PORT and METRICS_PORT, which are managed. */
  env?: Partial<Record<ServiceName, Record<string, string>>>;
  /** A Resend stand-in with a fake RESEND_API_KEY (true); false = no key, the notifier logs emails instead. */
  resend?: boolean;
  /** How long each service may take to answer 200 on /health/ready (30 s). */
  readyTimeoutMs?: number;
  /** TCP proxies between the services and these stores, for a test to cut (`system.proxies`); none by default. */
  proxy?: { mongodb?: boolean; rabbitmq?: boolean; mysql?: boolean };
  /** A MongoDB server (`mongodb://host:port`) for this system's database instead of MONGODB_URL or the in-process stand-in. */
  mongoServer?: string;
}

/** A service by name (the first of its kind, index 0) or the process itself. */
export type ServiceRef = ServiceName | ServiceProcess;

export interface System {
  gatewayUrl: string;
  authUrl: string;
  /** The MongoDB URL with this system's database. */
  mongoUrl: string;
  /** The AMQP URL of this system's vhost. */
  amqpUrl: string;
  /** The MySQL URL of this system's database. */
  mysqlUrl: string;
  /** The Resend stand-in (unless `resend: false`): `received` holds every email the notifier sent. */
  resend?: ReturnType<typeof startResendStandin>;
  /** The proxies asked for with `proxy` (the services reach that store only through it). */
  proxies: { mongodb?: TcpProxy; rabbitmq?: TcpProxy; mysql?: TcpProxy };
  /** The vhost, e.g. `vhost.closeConnections()` to cut every broker connection as a broker restart would. */
  vhost: TestVhost;
  database: TestDatabase;
  /** The converters' TMP_DIR (shared by all of them, removed by stop()). */
  tmpDir: string;
  /** The current process of each service, in start order; a restart replaces its entry. */
  services: ServiceProcess[];
  /** The current process of one service; throws if there is none. */
  service(name: ServiceName, index?: number): ServiceProcess;
  /**
   * Starts a service that is not running (never started, or exited/killed) on its own port and
   * waits until it is ready (unless `ready: false`). `start("converter", n)` with n past the last converter adds one.
   */
  start(name: ServiceName, index?: number, options?: { ready?: boolean }): Promise<ServiceProcess>;
  /**
   * Sends `signal` (SIGTERM) and waits for the exit, up to `timeoutMs` (30 s); past that the
   * process is SIGKILLed and this throws. Resolves with the exit code (128 + n for signal n).
   */
  kill(service: ServiceRef, signal?: NodeJS.Signals, timeoutMs?: number): Promise<number>;
  /** Sends a signal without waiting, e.g. SIGSTOP to freeze a service and SIGCONT to let it go on. */
  signal(service: ServiceRef, signal: NodeJS.Signals): void;
  /** Resolves once the service answers 200 on /health/ready; throws with its log lines if it exits or times out. */
  waitReady(service: ServiceRef, timeoutMs?: number): Promise<void>;
  /** The first of the service's log lines (parsed; captured already or yet to come) that `match` accepts; throws after `timeoutMs` (10 s). */
  waitForLog(service: ServiceRef, match: (entry: LogEntry) => boolean, timeoutMs?: number): Promise<LogEntry>;
  /**
   * SIGTERM to every service, waits for them (SIGKILL after 15 s), then drops the MySQL
   * database, the vhost and the MongoDB database, stops the Resend stand-in and removes the
   * temp directory. Safe to call twice and after a failed start; throws only after all of
   * that was tried, if some of it failed.
   */
  stop(): Promise<void>;
}

const ROOT = resolve(import.meta.dir, "../..");
const STOP_TIMEOUT_MS = 15_000;
const KILL_TIMEOUT_MS = 30_000;
const EXIT_SIGNALS: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];

/** Every variable a service reads: removed from the inherited environment so the test's own cannot leak in. */
const SERVICE_VARIABLES = new Set(
  [AuthConfig, GatewayConfig, ConverterConfig, NotifierConfig].flatMap((schema) => Object.keys(schema.properties)),
);

/** Starts the four services as processes on stores of their own; see the file's header. */
export async function startSystem(options: SystemOptions = {}): Promise<System> {
  const { converters = 1, resend: withResend = true, readyTimeoutMs = 30_000 } = options;
  const testLevel = process.env.LOG_LEVEL ?? "";
  const passThrough = testLevel === "debug" || testLevel === "trace";
  const serviceLevel = passThrough ? testLevel : "info";

  const services: ServiceProcess[] = [];
  const ports = new Map<string, number>(); // `${name}#${index}` → port, kept across restarts
  const cleanups: { what: string; run: () => unknown }[] = []; // in reverse order of creation
  let stopping: Promise<void> | undefined;

  // If the test process ends without stop() (an exit, a crash, Ctrl-C), no service outlives it.
  // On a signal the services are killed, then the signal is raised again, so the process
  // still ends the way it would have. (Stores are left; their names carry this pid.)
  const killAll = () => {
    for (const service of services) if (isRunning(service)) service.child.kill("SIGKILL");
  };
  const onSignal = (signal: NodeJS.Signals) => {
    killAll();
    unwatch();
    process.kill(process.pid, signal);
  };
  const unwatch = () => {
    process.off("exit", killAll);
    for (const signal of EXIT_SIGNALS) process.off(signal, onSignal);
  };
  process.on("exit", killAll);
  for (const signal of EXIT_SIGNALS) process.on(signal, onSignal);

  const system = {} as System;
  try {
    const database = await createTestDatabase({ migrate: true });
    cleanups.push({ what: "drop the MySQL database", run: () => database.drop() });
    const vhost = await createTestVhost();
    cleanups.push({ what: "delete the vhost", run: () => vhost.drop() });
    const mongoUrl = options.mongoServer
      ? withDatabase(options.mongoServer, `m3dio_test_${process.pid}_${Math.random().toString(36).slice(2, 8)}`)
      : await testMongoUrl();
    cleanups.push({ what: "drop the MongoDB database", run: () => dropTestDatabase(mongoUrl) });
    const resend = withResend ? startResendStandin() : undefined;
    if (resend) cleanups.push({ what: "stop the Resend stand-in", run: () => resend.stop() });
    const tmpDir = mkdtempSync(join(tmpdir(), "m3dio-system-"));
    cleanups.push({ what: "remove the temp directory", run: () => rmSync(tmpDir, { recursive: true, force: true }) });
    // One signing key for the system's life, so tokens survive a restart of auth.
    const { privateKey } = await jose.generateKeyPair("EdDSA", { extractable: true });
    const jwtKey = await jose.exportPKCS8(privateKey);

    // Ports chosen one after another, before anything starts, so no two services share one.
    const authPort = await portFor("auth", 0);
    const gatewayPort = await portFor("gateway", 0);
    for (let i = 0; i < converters; i++) await portFor("converter", i);
    await portFor("notifier", 0);
    const authUrl = `http://127.0.0.1:${authPort}`;
    const gatewayUrl = `http://127.0.0.1:${gatewayPort}`;
    // Proxies last, so they stop first (cleanups run in reverse): the stores are then dropped directly.
    const proxies: System["proxies"] = {};
    if (options.proxy?.mongodb) {
      const target = singleHost(mongoUrl, /^mongodb:\/\/(?:[^@/]*@)?([^/?,]+)/);
      proxies.mongodb = await startTcpProxy(target);
      cleanups.push({ what: "stop the MongoDB proxy", run: () => proxies.mongodb!.stop() });
    }
    if (options.proxy?.rabbitmq) {
      const target = singleHost(vhost.url, /^amqps?:\/\/(?:[^@/]*@)?([^/?,]+)/);
      proxies.rabbitmq = await startTcpProxy(target);
      cleanups.push({ what: "stop the RabbitMQ proxy", run: () => proxies.rabbitmq!.stop() });
    }
    if (options.proxy?.mysql) {
      proxies.mysql = await startTcpProxy(singleHost(database.url, /^mysql:\/\/(?:[^@/]*@)?([^/?,]+)/));
      cleanups.push({ what: "stop the MySQL proxy", run: () => proxies.mysql!.stop() });
    }
    const stores = {
      MONGODB_URL: proxies.mongodb ? throughProxy(mongoUrl, proxies.mongodb) : mongoUrl,
      AMQP_URL: proxies.rabbitmq ? throughProxy(vhost.url, proxies.rabbitmq) : vhost.url,
    };

    const defaults: Record<ServiceName, Record<string, string>> = {
      auth: {
        MYSQL_URL: proxies.mysql ? throughProxy(database.url, proxies.mysql) : database.url,
        AMQP_URL: stores.AMQP_URL,
        MIGRATE_ON_START: "false",
        JWT_PRIVATE_KEY: jwtKey,
        GATEWAY_SECRET: TEST_GATEWAY_SECRET,
        ...TEST_AUTH_ENV,
      },
      gateway: {
        ...stores,
        AUTH_URL: authUrl,
        PUBLIC_URL: gatewayUrl,
        GATEWAY_SECRET: TEST_GATEWAY_SECRET,
        LINK_SIGNING_KEY: TEST_LINK_SIGNING_KEY,
      },
      converter: { ...stores, TMP_DIR: tmpDir, SHUTDOWN_GRACE_MS: "5000" },
      notifier: {
        ...stores,
        PUBLIC_URL: gatewayUrl,
        LINK_SIGNING_KEY: TEST_LINK_SIGNING_KEY, // the gateway checks the links the emails carry
        MAIL_FROM: "m3dio <mp3@m3dio.test>",
        RETRY_BASE_MS: "50",
        SEND_TIMEOUT_MS: "5000",
        ...(resend ? { RESEND_API_KEY: "re_test_system_key", RESEND_BASE_URL: resend.url } : {}),
      },
    };

    function environment(name: ServiceName, port: number, metricsPort: number): Record<string, string> {
      const env: Record<string, string> = {};
      for (const [key, value] of Object.entries(process.env)) {
        if (value !== undefined && !SERVICE_VARIABLES.has(key)) env[key] = value;
      }
      const ports = { PORT: String(port), METRICS_PORT: String(metricsPort) };
      return { ...env, LOG_LEVEL: serviceLevel, ...defaults[name], ...options.env?.[name], ...ports };
    }

    /** The port of a service's process (`purpose` "metrics": its METRICS_PORT), the same across restarts. */
    async function portFor(name: ServiceName, index: number, purpose = "http"): Promise<number> {
      const key = `${name}#${index}#${purpose}`;
      let port = ports.get(key);
      if (port === undefined) {
        port = await freePort([...ports.values()]);
        ports.set(key, port);
      }
      return port;
    }

    function find(name: ServiceName, index = 0): ServiceProcess | undefined {
      return services.find((service) => service.name === name && service.index === index);
    }

    function resolveRef(ref: ServiceRef): ServiceProcess {
      if (typeof ref !== "string") return ref;
      const found = find(ref);
      if (!found) throw new Error(`system: no ${ref} process`);
      return found;
    }

    function spawn(name: ServiceName, index: number, port: number, metricsPort: number): ServiceProcess {
      const child = Bun.spawn([process.execPath, "--no-env-file", `${name}.ts`], {
        cwd: ROOT,
        env: environment(name, port, metricsPort),
        stdin: "ignore",
        stdout: "pipe",
        stderr: "pipe",
      });
      const label = index || name === "converter" ? `${name}${index}` : name;
      const logs: string[] = [];
      const keep = (line: string) => {
        logs.push(line);
        if (passThrough) process.stderr.write(`${label.padEnd(10)}| ${line}\n`);
      };
      const reading = Promise.all([readLines(child.stdout, keep), readLines(child.stderr, keep)]);
      // The exit code once the output is read to the end, so `logs` is complete when it resolves.
      const exited = child.exited.then(async (code) => {
        await reading.catch(() => {});
        return code;
      });
      const url = `http://127.0.0.1:${port}`;
      return { name, index, port, url, metricsUrl: `http://127.0.0.1:${metricsPort}`, child, logs, exited };
    }

    async function start(name: ServiceName, index = 0, { ready = true } = {}): Promise<ServiceProcess> {
      if (stopping) throw new Error("system: stopped");
      if (!SERVICE_NAMES.includes(name)) throw new Error(`system: no service called ${name}`);
      if (index !== 0 && name !== "converter")
        throw new Error(`system: only converters have more than one process (${name} #${index})`);
      const previous = find(name, index);
      if (previous && isRunning(previous))
        throw new Error(`system: ${name} #${index} is already running (pid ${previous.child.pid})`);
      const service = spawn(name, index, await portFor(name, index), await portFor(name, index, "metrics"));
      const at = previous ? services.indexOf(previous) : -1;
      if (at >= 0) services[at] = service;
      else services.push(service);
      if (ready) await waitReady(service);
      return service;
    }

    async function waitReady(ref: ServiceRef, timeoutMs = readyTimeoutMs): Promise<void> {
      const service = resolveRef(ref);
      const deadline = Date.now() + timeoutMs;
      let last = "no answer yet";
      let exitCode: number | undefined;
      void service.exited.then((code) => (exitCode = code));
      while (Date.now() < deadline) {
        if (exitCode !== undefined) {
          throw new Error(
            `system: ${nameOf(service)} exited with code ${exitCode} before it was ready\n${tail(service)}`,
          );
        }
        try {
          const answer = await fetch(`${service.url}/health/ready`, {
            signal: AbortSignal.timeout(Math.min(3000, Math.max(1, deadline - Date.now()))),
          });
          if (answer.status === 200) {
            await answer.arrayBuffer();
            return;
          }
          last = `${answer.status} ${(await answer.text()).slice(0, 300)}`;
        } catch (error) {
          last = (error as Error).message;
        }
        await Bun.sleep(100);
      }
      throw new Error(`system: ${nameOf(service)} not ready within ${timeoutMs} ms (last: ${last})\n${tail(service)}`);
    }

    async function kill(
      ref: ServiceRef,
      signal: NodeJS.Signals = "SIGTERM",
      timeoutMs = KILL_TIMEOUT_MS,
    ): Promise<number> {
      const service = resolveRef(ref);
      if (isRunning(service)) service.child.kill(signal);
      const code = await within(service.exited, timeoutMs);
      if (code !== undefined) return code;
      service.child.kill("SIGKILL");
      await service.exited;
      throw new Error(
        `system: ${nameOf(service)} did not exit within ${timeoutMs} ms of ${signal}; killed it\n${tail(service)}`,
      );
    }

    function waitForLog(ref: ServiceRef, match: (entry: LogEntry) => boolean, timeoutMs = 10_000): Promise<LogEntry> {
      const service = resolveRef(ref);
      const deadline = Date.now() + timeoutMs;
      return (async () => {
        for (let seen = 0; ; ) {
          for (; seen < service.logs.length; seen++) {
            const entry = parseLine(service.logs[seen]!);
            if (match(entry)) return entry;
          }
          if (Date.now() > deadline)
            throw new Error(
              `system: no matching log line from ${nameOf(service)} within ${timeoutMs} ms\n${tail(service)}`,
            );
          await Bun.sleep(25);
        }
      })();
    }

    function stop(): Promise<void> {
      stopping ??= (async () => {
        const failures: string[] = [];
        await Promise.all(
          services.map(async (service) => {
            try {
              if (isRunning(service)) await kill(service, "SIGTERM", STOP_TIMEOUT_MS);
            } catch (error) {
              failures.push((error as Error).message);
            }
          }),
        );
        for (const { what, run } of cleanups.reverse()) {
          try {
            await run();
          } catch (error) {
            failures.push(`could not ${what}: ${(error as Error).message}`);
          }
        }
        unwatch();
        if (failures.length) throw new Error(`system: stop() did not finish cleanly:\n${failures.join("\n")}`);
      })();
      return stopping;
    }

    Object.assign(system, {
      gatewayUrl,
      authUrl,
      mongoUrl,
      amqpUrl: vhost.url,
      mysqlUrl: database.url,
      resend,
      vhost,
      database,
      tmpDir,
      services,
      proxies,
      service: (name: ServiceName, index = 0) => {
        const found = find(name, index);
        if (!found) throw new Error(`system: no ${name} #${index}`);
        return found;
      },
      start,
      kill,
      waitReady,
      waitForLog,
      stop,
      signal: (ref: ServiceRef, signal: NodeJS.Signals) => void resolveRef(ref).child.kill(signal),
    } satisfies System);

    await start("auth");
    await start("gateway");
    await Promise.all([...Array.from({ length: converters }, (_, i) => start("converter", i)), start("notifier")]);
    return system;
  } catch (error) {
    // A failed start leaves nothing behind: what was started stops, what was made is removed.
    if (system.stop) await system.stop().catch(() => {});
    else {
      killAll();
      for (const { run } of cleanups.reverse())
        await Promise.resolve()
          .then(run)
          .catch(() => {});
      unwatch();
    }
    throw error;
  }
}

// ── helpers ──────────────────────────────────────────────────────────────────
/** The one host:port of a store URL (a proxy stands in front of one server only). */
function singleHost(url: string, hostPart: RegExp): { host: string; port: number } {
  const found = hostPart.exec(url)?.[1];
  const match = found && /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(found);
  if (!match)
    throw new Error(`system: a proxy needs a URL with one host:port, not ${url.replace(/\/\/[^@/]*@/, "//***@")}`);
  const host = match[1]!.replace(/^\[|\]$/g, "");
  const defaults: Record<string, number> = { mongodb: 27017, mysql: 3306, amqps: 5671, amqp: 5672 };
  const port = Number(match[2] ?? defaults[url.slice(0, url.indexOf(":"))]);
  return { host: host === "localhost" ? "127.0.0.1" : host, port };
}

/** The same URL (credentials, path, query) with its host:port replaced by the proxy's. */
function throughProxy(url: string, proxy: TcpProxy): string {
  return url.replace(/^([a-z+]+:\/\/(?:[^@/]*@)?)[^/?,]+/, `$1127.0.0.1:${proxy.port}`);
}
