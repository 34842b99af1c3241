// Starting before the stores (issue 16): on Compose or Kubernetes a service often starts
// while MongoDB, RabbitMQ or MySQL are still starting. It must not exit (a crash loop's
// back-off outlasts the stores' start): it stays live, answers not-ready naming what it
// waits for, keeps trying, and becomes ready once they answer, in the same process.
// auth is ready only once its database is migrated, and says how to migrate it.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { resolve } from "node:path";
import { migrateDatabase } from "../db/migrate.ts";
import { TEST_AUTH_ENV } from "./support/auth.ts";
import { gatewayClient } from "./support/client.ts";
import { makeVideo } from "./support/media.ts";
import { createTestVhost, type TestVhost } from "./support/rabbit.ts";
import { freePort, isRunning, parseLine, readLines } from "./support/service-process.ts";
import { SERVICE_NAMES, type ServiceProcess, type System, startSystem } from "./support/system.ts";

const ROOT = resolve(import.meta.dir, "..");

interface Readiness {
  status: string;
  checks: Record<string, string>;
}

async function readiness(service: Pick<ServiceProcess, "url">): Promise<{ status: number; body: Readiness }> {
  const answer = await fetch(`${service.url}/health/ready`);
  return { status: answer.status, body: (await answer.json()) as Readiness };
}

/** The names of the checks that are not "up". */
const failing = (body: Readiness) =>
  Object.entries(body.checks)
    .filter(([, result]) => result !== "up")
    .map(([name]) => name)
    .sort();

describe("services started before their stores", () => {
  let system: System;
  beforeAll(async () => {
    system = await startSystem({ proxy: { mongodb: true, rabbitmq: true, mysql: true } });
  }, 90_000);
  afterAll(() => system.stop(), 60_000);

  test("stay live and not ready, naming what they wait for, then become ready without a restart", async () => {
    const { mongodb, rabbitmq, mysql } = system.proxies;
    for (const name of SERVICE_NAMES) await system.kill(name);
    await Promise.all([mongodb!.cut(), rabbitmq!.cut(), mysql!.cut()]);
    const started = [];
    for (const name of SERVICE_NAMES) started.push(await system.start(name, 0, { ready: false }));

    // Each tried to start, failed, and is still running.
    for (const name of SERVICE_NAMES)
      await system.waitForLog(name, (entry) => entry.event === "service.start_failed", 20_000);
    expect(started.map(isRunning)).toEqual([true, true, true, true]);

    const answers = await Promise.all(started.map(readiness));
    const live = await Promise.all(started.map((service) => fetch(`${service.url}/health/live`)));
    expect(live.map((answer) => answer.status)).toEqual([200, 200, 200, 200]);
    expect(answers.map(({ status, body }) => ({ status, state: body.status, failing: failing(body) }))).toEqual([
      { status: 503, state: "unavailable", failing: ["mysql", "rabbitmq", "schema", "startup"] },
      { status: 503, state: "unavailable", failing: ["mongodb", "rabbitmq", "startup"] },
      { status: 503, state: "unavailable", failing: ["mongodb", "rabbitmq", "startup"] },
      { status: 503, state: "unavailable", failing: ["mongodb", "rabbitmq", "startup"] },
    ]);
    expect(answers[1]!.body.checks.startup).toStartWith("starting: ");

    await Promise.all([mysql!.restore(), mongodb!.restore(), rabbitmq!.restore()]);
    for (const service of started) await system.waitReady(service, 45_000);
    // The same processes: none exited, each listened once and says it started.
    expect(started.map(isRunning)).toEqual([true, true, true, true]);
    for (const service of started) {
      const events = service.logs.map((line) => parseLine(line).event);
      expect(events.filter((event) => event === "service.listening")).toHaveLength(1);
      expect(events).toContain("service.started");
    }

    // And the system works: a video goes all the way to an MP3 and its email.
    const http = gatewayClient(system.gatewayUrl, { inbox: system.resend });
    const user = await http.newUser("latestores");
    const job = await http.upload(user, await Bun.file(await makeVideo({ seconds: 2 })).bytes(), "late.mp4");
    expect(await http.finished(user, job.id, 45_000)).toMatchObject({ status: "done" });
  }, 150_000);
});

describe("auth on a database that is not migrated", () => {
  let child: ReturnType<typeof Bun.spawn> | undefined;
  let url = "";
  const dropDatabase = async () => {
    const { createConnection } = await import("mysql2/promise");
    const server = new URL(url);
    const name = decodeURIComponent(server.pathname.slice(1));
    server.pathname = "/";
    const connection = await createConnection({ uri: server.toString() });
    await connection.query(`DROP DATABASE IF EXISTS \`${name}\``);
    await connection.end();
  };
  let vhost: TestVhost | undefined;
  afterAll(async () => {
    child?.kill("SIGKILL");
    if (url) await dropDatabase();
    await vhost?.drop();
  });

  test("is not ready and says how to migrate; register is 503, not 500; migrated, it is ready", async () => {
    // A database that does not even exist yet, as on a fresh server.
    const server = new URL(process.env.MYSQL_URL ?? "mysql://root@127.0.0.1:3306/m3dio");
    server.pathname = `/m3dio_fresh_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
    url = server.toString();
    const port = await freePort([]);
    const metricsPort = await freePort([port]);
    vhost = await createTestVhost();
    const stores = { MYSQL_URL: url, AMQP_URL: vhost.url };
    const env = { PATH: process.env.PATH ?? "", ...stores, PORT: `${port}`, METRICS_PORT: `${metricsPort}` };
    const spawned = Bun.spawn([process.execPath, "--no-env-file", "auth.ts"], {
      cwd: ROOT,
      env: { ...env, ...TEST_AUTH_ENV, LOG_LEVEL: "info" },
      stdout: "pipe",
      stderr: "pipe",
    });
    child = spawned;
    const events: (string | undefined)[] = [];
    void readLines(spawned.stdout, (line) => events.push(parseLine(line).event));
    const auth = { url: `http://127.0.0.1:${port}` };
    while (!events.includes("db.not_migrated") || !events.includes("broker.connected")) await Bun.sleep(50);

    const before = await readiness(auth);
    expect({ status: before.status, failing: failing(before.body) }).toEqual({
      status: 503,
      failing: ["mysql", "schema"],
    });
    expect(before.body.checks.schema).toContain("bun run db:migrate");
    const register = await fetch(`${auth.url}/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: "fresh@example.com", password: "a long enough password" }),
    });
    expect({ status: register.status, type: register.headers.get("content-type") }).toEqual({
      status: 503,
      type: "application/problem+json",
    });

    await migrateDatabase(url);
    let after = await readiness(auth);
    for (let tries = 0; after.status !== 200 && tries < 50; tries++) {
      await Bun.sleep(100);
      after = await readiness(auth);
    }
    expect(after).toEqual({
      status: 200,
      body: { status: "ready", checks: { startup: "up", mysql: "up", schema: "up", rabbitmq: "up" } },
    });
    const registered = await fetch(`${auth.url}/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: "fresh@example.com", password: "a long enough password" }),
    });
    expect(registered.status).toBe(201);
  }, 60_000);
});
