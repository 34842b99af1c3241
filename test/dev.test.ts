// `bun run dev` works the first time (issue 16): run as a process against a fresh MySQL
// database, a fresh RabbitMQ vhost and no MongoDB, on ports of the test's choosing, as a
// developer would, then stopped with Ctrl-C (SIGINT) or SIGTERM, leaving nothing running.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MongoClient } from "mongodb";
import { createConnection } from "mysql2/promise";
import { DevConfig, SERVICES } from "../scripts/dev/config.ts";
import { TEST_AUTH_ENV } from "./support/auth.ts";
import { type DevRun, isAlive, listening, runDev } from "./support/dev-process.ts";
import { type MongoStandin, startMongoStandin } from "./support/mongo-standin.ts";
import { createTestVhost, type TestVhost } from "./support/rabbit.ts";
import { freePort } from "./support/service-process.ts";

const SERVER_URL = process.env.MYSQL_URL ?? "mysql://root@127.0.0.1:3306/m3dio";
const STOP_TIMEOUT_MS = 30_000;

const devDir = mkdtempSync(join(tmpdir(), "m3dio-dev-"));
const database = `m3dio_devtest_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
const mysqlUrl = Object.assign(new URL(SERVER_URL), { pathname: `/${database}` }).toString();
const runs: DevRun[] = [];
let vhost: TestVhost;
let ports: Record<string, number>;

beforeAll(async () => {
  vhost = await createTestVhost();
  const taken: number[] = [];
  ports = {};
  for (const name of Object.keys(DevConfig.properties).filter((key) => key.endsWith("_PORT"))) {
    ports[name] = await freePort(taken);
    taken.push(ports[name]);
  }
});

afterAll(async () => {
  for (const run of runs) run.child.kill("SIGKILL");
  for (const pid of runs.flatMap(servicePids)) if (isAlive(pid)) process.kill(pid, "SIGKILL");
  await vhost?.drop();
  const server = await createConnection({ uri: Object.assign(new URL(SERVER_URL), { pathname: "/" }).toString() });
  await server.query(`DROP DATABASE IF EXISTS \`${database}\``);
  await server.end();
  rmSync(devDir, { recursive: true, force: true });
});

/** dev with the test's stores, ports and key folder; `env` wins. */
function dev(env: Record<string, string> = {}): DevRun {
  const run = runDev({
    LOG_LEVEL: "info",
    ...TEST_AUTH_ENV,
    MYSQL_URL: mysqlUrl,
    AMQP_URL: vhost.url,
    DEV_DIR: devDir,
    ...Object.fromEntries(Object.entries(ports).map(([name, port]) => [name, String(port)])),
    ...env,
  });
  runs.push(run);
  return run;
}

function servicePids(run: DevRun): number[] {
  return run.entries.filter((entry) => entry.event === "dev.service_started").map((entry) => entry.pid as number);
}

/** All four services said `service.listening`, each on the port dev was given for it. */
async function allListening(run: DevRun): Promise<void> {
  for (const name of SERVICES) {
    const entry = await run.waitFor(
      (line) => line.from === name && line.event === "service.listening",
      `${name}'s service.listening`,
    );
    expect({ name, port: entry.port, metricsPort: entry.metricsPort }).toEqual({
      name,
      port: ports[`${name.toUpperCase()}_PORT`],
      metricsPort: ports[`${name.toUpperCase()}_METRICS_PORT`],
    });
  }
}

/** Stops dev with `signal`: it exits 0 after each service said service.stopped, and no service or port is left. */
async function stopsCleanly(run: DevRun, signal: NodeJS.Signals): Promise<void> {
  const pids = servicePids(run);
  expect(pids).toHaveLength(SERVICES.length);
  run.child.kill(signal);
  const code = await Promise.race([run.exited, Bun.sleep(STOP_TIMEOUT_MS).then(() => "still running")]);
  expect(code, run.output()).toBe(0);
  const stopped = run.entries.filter((entry) => entry.event === "service.stopped").map((entry) => entry.from);
  expect(stopped.sort()).toEqual([...SERVICES].sort());
  expect(pids.filter(isAlive)).toEqual([]);
  const open = await Promise.all(Object.values(ports).map(async (port) => ((await listening(port)) ? port : 0)));
  expect(open.filter(Boolean)).toEqual([]);
}

const gateway = () => `http://127.0.0.1:${ports.GATEWAY_PORT}`;
const json = { "content-type": "application/json" };

describe("bun run dev refuses to start without its stores, in one line", () => {
  test("MySQL not reachable: exit 1, one line naming MYSQL_URL, nothing started", async () => {
    const closed = await freePort(Object.values(ports));
    const run = dev({ MYSQL_URL: `mysql://root@127.0.0.1:${closed}/${database}` });
    expect(await run.exited).toBe(1);
    expect(run.entries.map(({ event, store, variable }) => ({ event, store, variable }))).toEqual([
      { event: "dev.store_unreachable", store: "mysql", variable: "MYSQL_URL" },
    ]);
  });

  test("RabbitMQ not reachable: exit 1, one line naming AMQP_URL, nothing started", async () => {
    const closed = await freePort(Object.values(ports));
    const run = dev({ AMQP_URL: `amqp://guest:guest@127.0.0.1:${closed}` });
    expect(await run.exited).toBe(1);
    expect(run.entries.map(({ event, store, variable }) => ({ event, store, variable }))).toEqual([
      { event: "dev.store_unreachable", store: "rabbitmq", variable: "AMQP_URL" },
    ]);
  });

  test("two services given one port: exit 78, one line naming both variables", async () => {
    const run = dev({ GATEWAY_PORT: String(ports.AUTH_PORT) });
    expect(await run.exited).toBe(78);
    expect(run.entries).toHaveLength(1);
    expect(run.entries[0]).toMatchObject({ event: "dev.config_invalid", level: "fatal" });
    expect(run.entries[0]!.msg).toContain("GATEWAY_PORT");
    expect(run.entries[0]!.msg).toContain("AUTH_PORT");
  });
});

describe("bun run dev on a fresh database, without MongoDB, with PORT set", () => {
  let token: string;

  test("each service on its own port, PORT ignored with a warning, the stand-in said loudly; Ctrl-C stops it all", async () => {
    const globalPort = await freePort(Object.values(ports));
    const run = dev({ PORT: String(globalPort) });
    expect(await run.waitFor((line) => line.event === "dev.port_ignored", "dev.port_ignored")).toMatchObject({
      level: "warn",
      variable: "PORT",
    });
    const standin = await run.waitFor((line) => line.event === "dev.mongo_standin", "dev.mongo_standin");
    expect(standin.level).toBe("warn");
    await allListening(run);
    expect(await listening(globalPort)).toBe(false);

    for (const name of SERVICES) {
      const live = await fetch(`http://127.0.0.1:${ports[`${name.toUpperCase()}_PORT`]}/health/live`);
      expect({ name, status: live.status }).toEqual({ name, status: 200 });
    }
    // A fresh database: dev migrated it, so registering works at once.
    const account = { email: `dev-${Date.now()}@example.com`, password: "correct horse battery" };
    const registered = await fetch(`${gateway()}/auth/register`, {
      method: "POST",
      headers: json,
      body: JSON.stringify(account),
    });
    expect(registered.status, await registered.clone().text()).toBe(201);
    const login = await fetch(`${gateway()}/auth/login`, {
      method: "POST",
      headers: json,
      body: JSON.stringify(account),
    });
    expect(login.status).toBe(200);
    token = ((await login.json()) as { token: string }).token;
    const jobs = await fetch(`${gateway()}/jobs`, { headers: { authorization: `Bearer ${token}` } });
    expect(jobs.status).toBe(200);

    // The signing key dev made is kept for the next start, readable by this user only.
    const key = statSync(join(devDir, "jwt-private-key.pem"));
    expect((key.mode & 0o777).toString(8)).toBe("600");

    await stopsCleanly(run, "SIGINT");
    expect(await listening(Number(new URL(String(standin.url)).port))).toBe(false);
  });

  test("restarted with MONGODB_URL: uses that MongoDB, starts no stand-in, and the token from before still works", async () => {
    expect(token).toBeString();
    const mongo: MongoStandin = await startMongoStandin();
    try {
      const mongoUrl = `${mongo.url}/m3dio_devtest`;
      const run = dev({ MONGODB_URL: mongoUrl });
      expect(await run.waitFor((line) => line.event === "dev.mongo", "dev.mongo")).toMatchObject({
        url: mongoUrl,
        source: "MONGODB_URL",
      });
      expect(await run.waitFor((line) => line.event === "dev.secret_kept", "dev.secret_kept")).toMatchObject({
        variable: "JWT_PRIVATE_KEY_FILE",
      });
      await allListening(run);
      expect(run.entries.filter((line) => line.event === "dev.mongo_standin")).toEqual([]);

      const jobs = await fetch(`${gateway()}/jobs`, { headers: { authorization: `Bearer ${token}` } });
      expect(jobs.status).toBe(200);
      // The gateway reads its jobs from the MongoDB it was given.
      const client = await MongoClient.connect(mongoUrl);
      const collections = await client.db().listCollections().toArray();
      await client.close();
      expect(collections.map((collection) => collection.name)).toContain("jobs");

      await stopsCleanly(run, "SIGTERM");
    } finally {
      await mongo.stop();
    }
  });
});

test("bun run mongo:standin --port N serves MongoDB on N until SIGTERM", async () => {
  const port = await freePort(Object.values(ports));
  const child = Bun.spawn(["bun", "run", "mongo:standin", "--port", String(port)], {
    cwd: join(import.meta.dir, ".."),
    stdout: "pipe",
    stderr: "pipe",
  });
  // Its first stdout line is the URL to use.
  let firstLine = "";
  const decoder = new TextDecoder();
  for await (const chunk of child.stdout) {
    firstLine += decoder.decode(chunk, { stream: true });
    if (firstLine.includes("\n")) break;
  }
  expect(firstLine.split("\n")[0]).toBe(`mongodb://127.0.0.1:${port}`);
  const client = await MongoClient.connect(`mongodb://127.0.0.1:${port}/m3dio`);
  expect(await client.db().command({ ping: 1 })).toMatchObject({ ok: 1 });
  await client.close();
  child.kill("SIGTERM");
  expect(await child.exited).toBe(0);
  expect(await listening(port)).toBe(false);
});

test("every variable bun run dev reads for itself is in the README and, commented, in .env.example", async () => {
  const readme = await Bun.file(join(import.meta.dir, "../README.md")).text();
  const example = await Bun.file(join(import.meta.dir, "../.env.example")).text();
  const own = Object.keys(DevConfig.properties).filter((name) => name.endsWith("_PORT") || name === "DEV_DIR");
  expect(own.filter((name) => !readme.includes(`\`${name}\``))).toEqual([]);
  expect(own.filter((name) => !example.includes(`# ${name}=`))).toEqual([]);
});
