// API keys for programs (issue 19), with the services as processes: a key is made with a
// login's token and shown once, listed without the key (with when it was last used), does
// the job routes on its own (upload → done → download), is refused on the account routes,
// and once deleted is refused by every gateway replica within the minute the API promises
// (here two gateway processes, each remembering what auth said about the key). Deleting
// the account deletes its keys; the internal lookup answers only the gateway.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { createConnection } from "mysql2/promise";
import type { JobView } from "../gateway/models.ts";
import { GATEWAY_SECRET_HEADER } from "../lib/client-address.ts";
import { TEST_GATEWAY_SECRET } from "./support/auth.ts";
import { makeVideo } from "./support/media.ts";
import { freePort, isRunning, parseLine, readLines, type ServiceProcess } from "./support/service-process.ts";
import { type System, startSystem } from "./support/system.ts";

const PASSWORD = "a good password";
/** The API's promise: a deleted key is refused everywhere within this. */
const REVOCATION_BOUND_MS = 60_000;

interface CreatedKey {
  id: number;
  name: string;
  key: string;
  createdAt: string;
}
interface KeyList {
  items: { id: number; name: string; prefix: string; createdAt: string; lastUsedAt: string | null }[];
}

let system: System;
let second: { url: string; child: ServiceProcess["child"]; logs: string[] };
let videoPath: string;

/** One more gateway process on the system's stores and auth, as a second replica would run. */
async function startSecondGateway() {
  const [port, metricsPort] = [await freePort([]), await freePort([])];
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "",
    PORT: String(port),
    METRICS_PORT: String(metricsPort),
    LOG_LEVEL: "info",
    AUTH_URL: system.authUrl,
    MONGODB_URL: system.mongoUrl,
    AMQP_URL: system.amqpUrl,
    GATEWAY_SECRET: TEST_GATEWAY_SECRET,
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    LINK_SIGNING_KEY: "second-gateway-link-signing-key-0123456789",
  };
  const child = Bun.spawn([process.execPath, "--no-env-file", "gateway.ts"], {
    cwd: `${import.meta.dir}/..`,
    env,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const logs: string[] = [];
  void readLines(child.stdout, (line) => logs.push(line));
  void readLines(child.stderr, (line) => logs.push(line));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ready = await fetch(`${url}/health/ready`).catch(() => undefined);
    if (ready?.status === 200) break;
    if (Date.now() > deadline || child.exitCode !== null)
      throw new Error(`the second gateway is not ready:\n${logs.slice(-30).join("\n")}`);
    await Bun.sleep(100);
  }
  return { url, child, logs };
}

beforeAll(async () => {
  system = await startSystem({ resend: false });
  second = await startSecondGateway();
  videoPath = await makeVideo({ seconds: 1 });
}, 120_000);
afterAll(async () => {
  if (second && second.child.exitCode === null) {
    second.child.kill("SIGTERM");
    await second.child.exited;
  }
  await system?.stop();
});

// ── steps, each as the gateway answers them ─────────────────────────────────
const bearer = (credential: string) => ({ authorization: `Bearer ${credential}` });
const at = (base: string, path: string, init: RequestInit = {}) => fetch(`${base}${path}`, init);
const gateway = (path: string, init: RequestInit = {}) => at(system.gatewayUrl, path, init);
const json = (body: unknown) => ({ "content-type": "application/json", body: JSON.stringify(body) });

let people = 0;
/** A registered account and its login's access token. */
async function person(prefix = "programmer") {
  const email = `${prefix}-${++people}-${process.pid}-${Date.now()}@example.com`;
  const { body, ...type } = json({ email, password: PASSWORD });
  expect((await gateway("/auth/register", { method: "POST", headers: type, body })).status).toBe(201);
  const login = await gateway("/auth/login", { method: "POST", headers: type, body });
  const { token } = (await login.json()) as { token: string };
  return { email, token };
}

async function makeKey(token: string, name = "backup script"): Promise<CreatedKey> {
  const { body, ...type } = json({ name });
  const answer = await gateway("/auth/keys", { method: "POST", headers: { ...type, ...bearer(token) }, body });
  expect(answer.status).toBe(201);
  return (await answer.json()) as CreatedKey;
}

const listKeys = async (token: string) =>
  (await (await gateway("/auth/keys", { headers: bearer(token) })).json()) as KeyList;

function upload(base: string, credential: string, name = "talk.mp4") {
  const form = new FormData();
  form.append("file", Bun.file(videoPath), name);
  return at(base, "/jobs", { method: "POST", headers: bearer(credential), body: form });
}

/** Polls the job with the key until it is done or failed. */
async function finished(credential: string, id: string): Promise<JobView> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const job = (await (await gateway(`/jobs/${id}`, { headers: bearer(credential) })).json()) as JobView;
    if (job.status === "done" || job.status === "failed" || Date.now() > deadline) return job;
    await Bun.sleep(200);
  }
}

async function keyRows(userEmail: string): Promise<{ key_hash: string; prefix: string; name: string }[]> {
  const connection = await createConnection({ uri: system.mysqlUrl, timezone: "Z" });
  try {
    const [rows] = await connection.query(
      "SELECT k.key_hash, k.prefix, k.name FROM api_keys k JOIN users u ON u.id = k.user_id WHERE u.email = ?",
      [userEmail],
    );
    return rows as { key_hash: string; prefix: string; name: string }[];
  } finally {
    await connection.end();
  }
}

// ── the tests ───────────────────────────────────────────────────────────────
describe("making and listing keys", () => {
  test("a key is shown once, stored only as its hash, and listed without it; lastUsedAt follows its use", async () => {
    const { email, token } = await person();
    const created = await makeKey(token, "  nightly backup  ");
    expect(created).toEqual({
      id: expect.any(Number),
      name: "nightly backup",
      key: expect.stringMatching(/^m3d_[A-Za-z0-9_-]{43}$/),
      createdAt: expect.any(String),
    });
    expect(Date.parse(created.createdAt)).toBeGreaterThan(Date.now() - 60_000);

    const stored = await keyRows(email);
    expect(stored).toEqual([
      {
        key_hash: createHash("sha256").update(created.key).digest("hex"),
        prefix: created.key.slice(0, 12),
        name: "nightly backup",
      },
    ]);

    const listing = await gateway("/auth/keys", { headers: bearer(token) });
    const listed = await listing.text();
    expect(listed).not.toContain(created.key);
    expect(JSON.parse(listed)).toEqual({
      items: [
        {
          id: created.id,
          name: "nightly backup",
          prefix: created.key.slice(0, 12),
          createdAt: created.createdAt,
          lastUsedAt: null,
        },
      ],
    });

    expect((await gateway("/account/usage", { headers: bearer(created.key) })).status).toBe(200);
    const [used] = (await listKeys(token)).items;
    expect(used!.lastUsedAt).not.toBeNull();
    expect(Date.parse(used!.lastUsedAt!)).toBeGreaterThanOrEqual(Date.parse(created.createdAt));
  });

  test("a bad name is 422 naming `name`; no token is 401; another user's key cannot be deleted", async () => {
    const { token } = await person();
    const { body, ...type } = json({ name: "   " });
    const blank = await gateway("/auth/keys", { method: "POST", headers: { ...type, ...bearer(token) }, body });
    expect(blank.status).toBe(422);
    expect(JSON.stringify(await blank.json())).toContain("name");
    expect((await gateway("/auth/keys")).status).toBe(401);

    const mine = await makeKey(token);
    const stranger = await person("stranger");
    const foreign = await gateway(`/auth/keys/${mine.id}`, { method: "DELETE", headers: bearer(stranger.token) });
    expect(foreign.status).toBe(404);
    expect((await gateway("/account/usage", { headers: bearer(mine.key) })).status).toBe(200);
  });
});

describe("a limit", () => {
  test("an account holds at most 50 keys: the 51st is 409", async () => {
    const { token } = await person();
    for (let n = 0; n < 50; n++) await makeKey(token, `key ${n}`);
    const { body, ...type } = json({ name: "one too many" });
    const refused = await gateway("/auth/keys", { method: "POST", headers: { ...type, ...bearer(token) }, body });
    expect(refused.status).toBe(409);
    expect(((await refused.json()) as { detail: string }).detail).toContain("50");
    expect((await listKeys(token)).items).toHaveLength(50);
  });

  test("keys asked for at once cannot pass the limit together: of 20 asked with room for 2, 2 are made, the rest 409", async () => {
    const { token } = await person();
    for (let n = 0; n < 48; n++) await makeKey(token, `key ${n}`);
    const asked = await Promise.all(
      Array.from({ length: 20 }, (_, n) => {
        const { body, ...type } = json({ name: `at once ${n}` });
        return gateway("/auth/keys", { method: "POST", headers: { ...type, ...bearer(token) }, body });
      }),
    );
    const statuses = asked.map((answer) => answer.status);
    expect(statuses.filter((status) => status === 201)).toHaveLength(2);
    expect(statuses.filter((status) => status === 409)).toHaveLength(18);
    expect((await listKeys(token)).items).toHaveLength(50);
  });
});

describe("what a key may do", () => {
  test("a key alone uploads, follows the job to done and downloads the MP3", async () => {
    const { token } = await person();
    const { key } = await makeKey(token);
    const answer = await upload(system.gatewayUrl, key);
    expect(answer.status).toBe(202);
    const job = (await answer.json()) as JobView;
    expect(await finished(key, job.id)).toMatchObject({ status: "done" });
    const listed = (await (await gateway("/jobs", { headers: bearer(key) })).json()) as { items: JobView[] };
    expect(listed.items.map((item) => item.id)).toEqual([job.id]);
    const audio = await gateway(`/jobs/${job.id}/audio`, { headers: bearer(key) });
    expect(audio.status).toBe(200);
    expect(audio.headers.get("content-type")).toBe("audio/mpeg");
    const bytes = (await audio.arrayBuffer()).byteLength;
    expect(bytes).toBeGreaterThan(1000);
    expect(audio.headers.get("content-length")).toBe(String(bytes));
  }, 90_000);

  test("the account routes refuse a key with 403 saying a key cannot do that", async () => {
    const { email, token } = await person();
    const { key } = await makeKey(token);
    const { body, ...type } = json({ currentPassword: PASSWORD, newPassword: "a brand new password" });
    const refusals = [
      await gateway("/auth/password", { method: "POST", headers: { ...type, ...bearer(key) }, body }),
      await gateway("/auth/keys", { headers: bearer(key) }),
      await gateway("/auth/keys", { method: "POST", headers: { ...type, ...bearer(key) }, body: '{"name":"more"}' }),
      await gateway("/auth/account", {
        method: "DELETE",
        headers: { ...type, ...bearer(key) },
        body: '{"password":"x"}',
      }),
    ];
    for (const refused of refusals) {
      expect(refused.status).toBe(403);
      expect(refused.headers.get("content-type")).toStartWith("application/problem+json");
      expect(((await refused.json()) as { detail: string }).detail).toContain("API key");
    }
    // nothing changed: the password still logs in, the key is still listed
    const login = json({ email, password: PASSWORD });
    expect(
      (
        await gateway("/auth/login", {
          method: "POST",
          headers: { "content-type": login["content-type"] },
          body: login.body,
        })
      ).status,
    ).toBe(200);
    expect((await listKeys(token)).items).toHaveLength(1);
  });

  test("a made-up or malformed key is 401", async () => {
    for (const made of [`m3d_${"A".repeat(43)}`, "m3d_short"]) {
      const answer = await gateway("/jobs", { headers: bearer(made) });
      expect(answer.status).toBe(401);
      expect(answer.headers.get("content-type")).toStartWith("application/problem+json");
    }
  });
});

describe("deleting a key", () => {
  test("every gateway replica refuses a deleted key within the minute", async () => {
    const { token } = await person();
    const { id, key } = await makeKey(token);
    // Both replicas have used the key: each remembers auth's answer.
    for (const base of [system.gatewayUrl, second.url])
      expect((await at(base, "/jobs", { headers: bearer(key) })).status).toBe(200);

    const deletedAt = Date.now();
    expect((await gateway(`/auth/keys/${id}`, { method: "DELETE", headers: bearer(token) })).status).toBe(204);
    expect((await listKeys(token)).items).toEqual([]);
    const refusedAfter = await Promise.all(
      [system.gatewayUrl, second.url].map(async (base) => {
        for (;;) {
          const status = (await at(base, "/jobs", { headers: bearer(key) })).status;
          if (status === 401 || Date.now() - deletedAt > REVOCATION_BOUND_MS + 5000) return Date.now() - deletedAt;
          expect(status).toBe(200);
          await Bun.sleep(500);
        }
      }),
    );
    for (const elapsed of refusedAfter) expect(elapsed).toBeLessThanOrEqual(REVOCATION_BOUND_MS);
    for (const base of [system.gatewayUrl, second.url])
      expect((await at(base, "/jobs", { headers: bearer(key) })).status).toBe(401);
    // deleting it again: no such key
    expect((await gateway(`/auth/keys/${id}`, { method: "DELETE", headers: bearer(token) })).status).toBe(404);
  }, 120_000);

  test("deleting the account deletes its keys", async () => {
    const { email, token } = await person("leaving");
    const { key } = await makeKey(token);
    await makeKey(token, "second");
    expect(await keyRows(email)).toHaveLength(2);
    const { body, ...type } = json({ password: PASSWORD });
    expect(
      (await gateway("/auth/account", { method: "DELETE", headers: { ...type, ...bearer(token) }, body })).status,
    ).toBe(204);
    expect(await keyRows(email)).toEqual([]);
    const lookup = await at(system.authUrl, "/keys/introspect", {
      method: "POST",
      headers: { "content-type": "application/json", [GATEWAY_SECRET_HEADER]: TEST_GATEWAY_SECRET },
      body: JSON.stringify({ key }),
    });
    expect(lookup.status).toBe(401);
  });
});

describe("the internal lookup", () => {
  test("answers the gateway (its secret) and no one else", async () => {
    const { email, token } = await person();
    const { id, key } = await makeKey(token);
    const ask = (secret?: string) =>
      at(system.authUrl, "/keys/introspect", {
        method: "POST",
        headers: { "content-type": "application/json", ...(secret ? { [GATEWAY_SECRET_HEADER]: secret } : {}) },
        body: JSON.stringify({ key }),
      });
    const answered = await ask(TEST_GATEWAY_SECRET);
    expect(answered.status).toBe(200);
    expect(await answered.json()).toEqual({ userId: expect.any(String), email, emailVerified: false, keyId: id });
    expect((await ask()).status).toBe(403);
    expect((await ask("a guess")).status).toBe(403);
    const refusedLine = system
      .service("auth")
      .logs.map(parseLine)
      .find((entry) => entry.event === "api_key.lookup_refused");
    expect(refusedLine).toBeDefined();
    expect(isRunning(system.service("auth"))).toBe(true);
  });
});
