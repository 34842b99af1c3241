// The auth service in-process (app.handle) against a real MariaDB/MySQL database.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { drizzle } from "drizzle-orm/mysql2";
import { migrate } from "drizzle-orm/mysql2/migrator";
import * as jose from "jose";
import { createConnection } from "mysql2/promise";
import { AuthConfig, createAuth, LOCKOUT } from "../auth.ts";
import { MIGRATIONS_FOLDER, migrateDatabase } from "../db/migrate.ts";
import { parseConfig } from "../lib/config.ts";
import { createLogger } from "../lib/log.ts";
import { connectQueue, type Queue } from "../lib/queue.ts";
import { TOKEN_AUDIENCE, TOKEN_ISSUER } from "../lib/tokens.ts";
import { authTestConfig } from "./support/auth.ts";
import { createTestDatabase, type TestDatabase } from "./support/mysql.ts";
import { createTestVhost, type TestVhost } from "./support/rabbit.ts";

let database: TestDatabase;
let vhost: TestVhost;
/** The broker client every auth of this file publishes (verification emails) through. */
let queue: Queue;
let auth: Awaited<ReturnType<typeof createAuth>>;

beforeAll(async () => {
  database = await createTestDatabase();
  vhost = await createTestVhost();
  queue = await connectQueue(vhost.url, createLogger("test", "silent"));
  auth = await createAuth({ config: authTestConfig(database.url), queue });
  await auth.start();
});
afterAll(async () => {
  await auth?.close();
  await queue?.close();
  await vhost?.drop();
  await database?.drop();
});

const json = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  auth.app.handle(
    new Request(`http://auth${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
    }),
  );
const basic = (email: string, password: string) => ({ authorization: `Basic ${btoa(`${email}:${password}`)}` });
const loginBasic = (email: string, password: string) =>
  auth.app.handle(new Request("http://auth/login", { method: "POST", headers: basic(email, password) }));

let counter = 0;
const uniqueEmail = () => `user${++counter}.${Date.now()}@example.com`;

async function storedHash(email: string): Promise<string> {
  const connection = await createConnection({ uri: database.url });
  const [rows] = await connection.query("SELECT password_hash FROM users WHERE email = ?", [email]);
  await connection.end();
  return (rows as { password_hash: string }[])[0]!.password_hash;
}

async function jwks() {
  const response = await auth.app.handle(new Request("http://auth/.well-known/jwks.json"));
  return jose.createLocalJWKSet((await response.json()) as jose.JSONWebKeySet);
}

describe("POST /register", () => {
  test("creates a user with a normalised email and answers 201 {id, email, verified: false}", async () => {
    const response = await json("/register", { email: "  Ada.Lovelace@Example.COM ", password: "correct horse" });
    expect(response.status).toBe(201);
    const body = await response.json();
    expect(body).toEqual({ id: expect.any(Number), email: "ada.lovelace@example.com", verified: false });
  });

  test("a second registration with the same email (any case) is 409 problem+json", async () => {
    const email = uniqueEmail();
    expect((await json("/register", { email, password: "password-1" })).status).toBe(201);
    const response = await json("/register", { email: email.toUpperCase(), password: "password-2" });
    expect(response.status).toBe(409);
    expect(response.headers.get("content-type")).toStartWith("application/problem+json");
    expect(await response.json()).toMatchObject({
      status: 409,
      title: "Conflict",
      detail: expect.stringContaining("already exists"),
    });
  });

  test.each([
    [{ email: "not-an-email", password: "long enough" }, "email"],
    [{ email: "ok@example.com", password: "short" }, "password"],
    [{ email: "ok@example.com", password: "x".repeat(257) }, "password"],
    [{ email: "ok@example.com" }, "password"],
  ])("invalid input %j is 422 naming the field %s", async (body, field) => {
    const response = await json("/register", body);
    expect(response.status).toBe(422);
    expect(response.headers.get("content-type")).toStartWith("application/problem+json");
    const problem = (await response.json()) as { errors: { field: string; message: string }[]; detail: string };
    expect(problem.errors.map((error) => error.field)).toContain(field);
    const message = problem.errors.find((error) => error.field === field)!.message;
    const missing = !(field in body);
    expect(message).toBe(
      missing ? "is required" : field === "email" ? "must be an email address" : "must be 8 to 256 characters",
    );
    expect(problem.detail).toContain(field);
  });

  test("a body that is not JSON is a 4xx problem, not a 500", async () => {
    const response = await json("/register", "{not json");
    expect(response.status).toBeGreaterThanOrEqual(400);
    expect(response.status).toBeLessThan(500);
    expect(response.headers.get("content-type")).toStartWith("application/problem+json");
  });

  test("the password is stored as an argon2id hash, never in clear, at the configured cost", async () => {
    const email = uniqueEmail();
    await json("/register", { email, password: "my secret words" });
    const hash = await storedHash(email);
    expect(hash).toStartWith("$argon2id$");
    expect(hash).toStartWith("$argon2id$v=19$m=1024,t=1,"); // the tests' cost (test/support/auth.ts)
    expect(hash).not.toContain("my secret words");
  });

  test("by default (production) the hash is argon2id at 64 MiB and two passes", async () => {
    const production = await createAuth({
      config: parseConfig(AuthConfig, { MYSQL_URL: database.url, LOG_LEVEL: "silent" }),
      signingKey: auth.signingKey,
      queue,
    });
    try {
      const email = uniqueEmail();
      const registered = await production.app.handle(
        new Request("http://auth/register", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ email, password: "my secret words" }),
        }),
      );
      expect(registered.status).toBe(201);
      expect(await storedHash(email)).toStartWith("$argon2id$v=19$m=65536,t=2,");
    } finally {
      await production.close();
    }
  });
});

describe("POST /login", () => {
  const email = `login.${Date.now()}@example.com`;
  const password = "open sesame!";
  beforeAll(async () => {
    expect((await json("/register", { email, password })).status).toBe(201);
  });

  test("JSON credentials answer {token, expiresAt} with a token the JWKS verifies", async () => {
    const response = await json("/login", { email: email.toUpperCase(), password });
    expect(response.status).toBe(200);
    const { token, expiresAt } = (await response.json()) as { token: string; expiresAt: string };
    const { payload, protectedHeader } = await jose.jwtVerify(token, await jwks());
    expect(protectedHeader.alg).toBe("EdDSA");
    expect(protectedHeader.kid).toBe(auth.signingKey.kid);
    expect(payload.email).toBe(email);
    expect(payload.sub).toMatch(/^\d+$/);
    expect(payload.jti).toEqual(expect.any(String));
    expect([payload.iss, payload.aud]).toEqual([TOKEN_ISSUER, TOKEN_AUDIENCE]);
    expect(payload.exp! - payload.iat!).toBe(3600);
    expect(new Date(expiresAt).getTime()).toBe(payload.exp! * 1000);
  });

  test("HTTP Basic credentials work the same", async () => {
    const response = await loginBasic(email, password);
    expect(response.status).toBe(200);
    const { token } = (await response.json()) as { token: string };
    expect((await jose.jwtVerify(token, await jwks())).payload.email).toBe(email);
  });

  test("wrong password and unknown email get the same 401 answer", async () => {
    const wrongPassword = await json("/login", { email, password: "not the password" });
    const unknownEmail = await json("/login", { email: uniqueEmail(), password: "not the password" });
    expect(wrongPassword.status).toBe(401);
    expect(unknownEmail.status).toBe(401);
    expect(await wrongPassword.json()).toEqual(await unknownEmail.json());
    expect(wrongPassword.headers.get("www-authenticate")).toBe(unknownEmail.headers.get("www-authenticate"));
    // a successful login clears the failures recorded above
    expect((await json("/login", { email, password })).status).toBe(200);
  });

  test("no credentials at all is 401 problem+json", async () => {
    const response = await auth.app.handle(new Request("http://auth/login", { method: "POST" }));
    expect(response.status).toBe(401);
    expect(response.headers.get("content-type")).toStartWith("application/problem+json");
  });

  test(`after ${LOCKOUT.maxFailures} failures the account is locked with 429 and Retry-After, even for the right password`, async () => {
    const victim = uniqueEmail();
    await json("/register", { email: victim, password });
    for (let i = 0; i < LOCKOUT.maxFailures; i++) {
      expect((await loginBasic(victim, "wrong password")).status).toBe(401);
    }
    const locked = await json("/login", { email: victim, password });
    expect(locked.status).toBe(429);
    const retryAfter = Number(locked.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThan(LOCKOUT.windowMs / 1000 - 60);
    expect(retryAfter).toBeLessThanOrEqual(LOCKOUT.windowMs / 1000);
    expect(await locked.json()).toMatchObject({ status: 429, retryAfter });
    // other accounts are not affected
    expect((await json("/login", { email, password })).status).toBe(200);
  });

  test("the lockout lives in MySQL: once the failures are older than the window, login works again", async () => {
    const victim = uniqueEmail();
    await json("/register", { email: victim, password });
    for (let i = 0; i < LOCKOUT.maxFailures; i++) await loginBasic(victim, "wrong password");
    expect((await loginBasic(victim, password)).status).toBe(429);
    const connection = await createConnection({ uri: database.url, timezone: "Z" });
    await connection.query(
      "UPDATE login_attempts SET attempted_at = attempted_at - INTERVAL 16 MINUTE WHERE email = ?",
      [victim],
    );
    await connection.end();
    expect((await loginBasic(victim, password)).status).toBe(200);
  });
});

describe("tokens", () => {
  const email = `tokens.${Date.now()}@example.com`;
  let token: string;
  beforeAll(async () => {
    await json("/register", { email, password: "token password" });
    token = ((await (await json("/login", { email, password: "token password" })).json()) as { token: string }).token;
  });

  test("a tampered payload fails verification", async () => {
    const [header, payload, signature] = token.split(".");
    const claims = JSON.parse(Buffer.from(payload!, "base64url").toString());
    const forged = Buffer.from(JSON.stringify({ ...claims, sub: "1" })).toString("base64url");
    await expect(jose.jwtVerify(`${header}.${forged}.${signature}`, await jwks())).rejects.toThrow();
  });

  test("an alg:none token fails verification", async () => {
    const [, payload] = token.split(".");
    const none = Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url");
    await expect(jose.jwtVerify(`${none}.${payload}.`, await jwks())).rejects.toThrow();
  });

  test("an expired token fails verification", async () => {
    const expired = await new jose.SignJWT({ email })
      .setProtectedHeader({ alg: auth.signingKey.alg, kid: auth.signingKey.kid })
      .setSubject("1")
      .setIssuedAt(Math.floor(Date.now() / 1000) - 7200)
      .setExpirationTime(Math.floor(Date.now() / 1000) - 3600)
      .sign(auth.signingKey.privateKey);
    await expect(jose.jwtVerify(expired, await jwks())).rejects.toThrow(jose.errors.JWTExpired);
  });

  test("a token signed by another key fails verification", async () => {
    const other = await jose.generateKeyPair("EdDSA");
    const foreign = await new jose.SignJWT({ email })
      .setProtectedHeader({ alg: "EdDSA", kid: auth.signingKey.kid })
      .setSubject("1")
      .setExpirationTime("1h")
      .sign(other.privateKey);
    await expect(jose.jwtVerify(foreign, await jwks())).rejects.toThrow();
  });

  test("the JWKS serves only the public key", async () => {
    const response = await auth.app.handle(new Request("http://auth/.well-known/jwks.json"));
    const { keys } = (await response.json()) as { keys: Record<string, unknown>[] };
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatchObject({ kty: "OKP", crv: "Ed25519", alg: "EdDSA", use: "sig", kid: auth.signingKey.kid });
    expect(keys[0]).not.toHaveProperty("d");
  });
});

describe("configured signing keys", () => {
  test.each(["EdDSA", "ES256"] as const)("a %s key given as PEM or JWK signs tokens with a stable kid", async (alg) => {
    const { privateKey } = await jose.generateKeyPair(alg, { extractable: true });
    const pem = await jose.exportPKCS8(privateKey);
    const jwk = JSON.stringify(await jose.exportJWK(privateKey));
    const kids: string[] = [];
    for (const JWT_PRIVATE_KEY of [pem, jwk]) {
      const service = await createAuth({ config: authTestConfig(database.url, { JWT_PRIVATE_KEY }), queue });
      const response = await service.app.handle(new Request("http://auth/.well-known/jwks.json"));
      const { keys } = (await response.json()) as { keys: { alg: string; kid: string }[] };
      expect(keys[0]!.alg).toBe(alg);
      kids.push(keys[0]!.kid);
      await service.close();
    }
    expect(kids[0]).toBe(kids[1]!);
  });
});

describe("health, metrics and docs", () => {
  test("live and ready answer 200 once started on a migrated database that answers", async () => {
    expect((await auth.app.handle(new Request("http://auth/health/live"))).status).toBe(200);
    const ready = await auth.app.handle(new Request("http://auth/health/ready"));
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({
      status: "ready",
      checks: { startup: "up", mysql: "up", schema: "up", rabbitmq: "up" },
    });
  });

  test("ready answers 503 naming the database when it is away", async () => {
    const config = authTestConfig("mysql://root@127.0.0.1:1/none");
    const service = await createAuth({ config, signingKey: auth.signingKey, queue });
    const ready = await service.app.handle(new Request("http://auth/health/ready"));
    expect(ready.status).toBe(503);
    const body = (await ready.json()) as { status: string; checks: { mysql: string } };
    expect(body.status).toBe("unavailable");
    expect(body.checks.mysql).not.toBe("up");
    await service.close();
  });

  test("metrics count requests by route and status in Prometheus text", async () => {
    await json("/login", { email: "nobody@example.com", password: "whatever1" });
    const response = await auth.metricsApp.handle(new Request("http://auth/metrics"));
    expect(response.headers.get("content-type")).toContain("text/plain");
    const text = await response.text();
    expect(text).toMatch(/http_requests_total\{[^}]*method="POST",route="\/login",status="401"[^}]*\} \d+/);
    expect(text).toContain("http_request_duration_seconds_bucket");
  });

  test("the OpenAPI document lists auth's routes", async () => {
    const response = await auth.app.handle(new Request("http://auth/docs/json"));
    const spec = (await response.json()) as { openapi: string; paths: Record<string, unknown> };
    expect(spec.openapi).toStartWith("3.");
    expect(Object.keys(spec.paths)).toEqual(expect.arrayContaining(["/register", "/login", "/.well-known/jwks.json"]));
  });
});

describe("migrations", () => {
  test("apply to an empty database and are a no-op the second time", async () => {
    const empty = await createTestDatabase({ migrate: false });
    try {
      await migrateDatabase(empty.url);
      const connection = await createConnection({ uri: empty.url });
      const [tables] = await connection.query("SHOW TABLES");
      const names = (tables as Record<string, string>[]).map((row) => Object.values(row)[0]);
      expect(names).toEqual(expect.arrayContaining(["users", "login_attempts", "__drizzle_migrations"]));
      const [before] = await connection.query("SELECT COUNT(*) AS n FROM __drizzle_migrations");
      await migrateDatabase(empty.url);
      const [after] = await connection.query("SELECT COUNT(*) AS n FROM __drizzle_migrations");
      expect(after).toEqual(before);
      await connection.end();
    } finally {
      await empty.drop();
    }
  });

  test("a database holding login attempts from before they had an address migrates, keeping users and attempts", async () => {
    const older = await createTestDatabase({ migrate: false });
    const firstOnly = mkdtempSync(join(tmpdir(), "m3dio-migrations-"));
    try {
      // db/migrations as it was at 0000, applied the way migrateDatabase applies them
      cpSync(MIGRATIONS_FOLDER, firstOnly, { recursive: true });
      const journal = await Bun.file(join(firstOnly, "meta/_journal.json")).json();
      journal.entries = journal.entries.slice(0, 1);
      writeFileSync(join(firstOnly, "meta/_journal.json"), JSON.stringify(journal));
      const connection = await createConnection({ uri: older.url, timezone: "Z" });
      await migrate(drizzle(connection), { migrationsFolder: firstOnly });
      await connection.query("INSERT INTO users (email, password_hash) VALUES ('kept@example.com', 'x')");
      await connection.query("INSERT INTO login_attempts (email, attempted_at) VALUES ('kept@example.com', NOW(3))");
      await migrateDatabase(older.url);
      const [users] = await connection.query("SELECT email FROM users");
      const [attempts] = await connection.query("SELECT email, client_address FROM login_attempts");
      await connection.end();
      expect(users as unknown).toEqual([{ email: "kept@example.com" }]);
      expect(attempts as unknown).toEqual([{ email: "kept@example.com", client_address: "" }]);
    } finally {
      rmSync(firstOnly, { recursive: true, force: true });
      await older.drop();
    }
  });

  test("create the database first when it does not exist yet (a fresh local MariaDB)", async () => {
    const missing = await createTestDatabase({ migrate: false });
    await missing.drop(); // a name no database has
    try {
      await migrateDatabase(missing.url);
      const connection = await createConnection({ uri: missing.url });
      const [tables] = await connection.query("SHOW TABLES");
      await connection.end();
      expect((tables as Record<string, string>[]).map((row) => Object.values(row)[0])).toContain("users");
    } finally {
      await missing.drop();
    }
  });
});

describe("config", () => {
  test.each([
    [{ PORT: "eighty" }, "config: PORT must be a whole number"],
    [{ MYSQL_URL: "postgres://x" }, "config: MYSQL_URL must match"],
    [{ JWT_TTL_SECONDS: "5" }, "config: JWT_TTL_SECONDS must be a whole number from 60"],
    [{ MIGRATE_ON_START: "perhaps" }, "config: MIGRATE_ON_START must be true or false"],
    [{ HASH_CONCURRENCY: "0" }, "config: HASH_CONCURRENCY must be a whole number from 1"],
    [{ LOGIN_RATE_PER_MINUTE: "lots" }, "config: LOGIN_RATE_PER_MINUTE must be a whole number from 1"],
    [{ REGISTER_RATE_PER_HOUR: "0" }, "config: REGISTER_RATE_PER_HOUR must be a whole number from 1"],
    [{ GATEWAY_SECRET: "too short" }, "config: GATEWAY_SECRET must be at least 16 characters"],
  ])("%j stops with a line naming the variable", (env, message) => {
    expect(() => parseConfig(AuthConfig, env)).toThrow(message);
  });

  test("hashing runs as many at once as there are CPUs, unless configured", () => {
    expect(parseConfig(AuthConfig, {}).HASH_CONCURRENCY).toBe(availableParallelism());
    expect(parseConfig(AuthConfig, { HASH_CONCURRENCY: "3" }).HASH_CONCURRENCY).toBe(3);
  });

  test("the service started with a bad variable exits with one line naming it", async () => {
    const child = Bun.spawn([process.execPath, "auth.ts"], {
      cwd: `${import.meta.dir}/..`,
      env: { ...process.env, PORT: "-1" },
      stderr: "pipe",
      stdout: "pipe",
    });
    const [code, stderr] = await Promise.all([child.exited, new Response(child.stderr).text()]);
    expect(code).not.toBe(0);
    expect(stderr.trim().split("\n")).toHaveLength(1);
    expect(stderr).toContain("PORT");
  });
});
