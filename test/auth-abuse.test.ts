// The attacks of issue 15 on logging in, each reproduced against auth (and the
// gateway's forwarding of it) over a real MariaDB, with what the attacker and the real
// user see: hashing that cannot be flooded, per-address rates, a lockout that locks
// out the guesser and not the owner, old attempts swept, HTTP Basic checked like JSON.
// The token claims the gateway checks are in test/token-claims.test.ts.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Elysia } from "elysia";
import { createConnection } from "mysql2/promise";
import { addressKey, clientAddress } from "../auth/client-address.ts";
import { hashSlots, rateLimiter } from "../auth/limits.ts";
import { createAuth, LOCKOUT } from "../auth.ts";
import { authRoutes } from "../gateway/auth-routes.ts";
import { jwksVerifier } from "../gateway/bearer.ts";
import { forwardedClient, parseProxies } from "../gateway/client-address.ts";
import { GatewayConfig } from "../gateway.ts";
import { parseConfig } from "../lib/config.ts";
import { createLogger } from "../lib/log.ts";
import { problems } from "../lib/problem.ts";
import { authTestConfig } from "./support/auth.ts";
import { createTestDatabase, type TestDatabase } from "./support/mysql.ts";
import { createTestVhost, type TestVhost } from "./support/rabbit.ts";

const SECRET = "abuse-test-gateway-secret";
const PASSWORD = "the owner's password";
let database: TestDatabase;
/** auth's broker: the verification emails it queues stay in this test's own vhost. */
let vhost: TestVhost;
/** What the tests started, shut down in reverse at the end. */
const running: { shutdown(): Promise<unknown> }[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  vhost = await createTestVhost();
});
afterAll(async () => {
  for (const service of running.reverse()) await service.shutdown();
  await database?.drop();
  await vhost?.drop();
});

interface LogLine {
  event?: string;
  [field: string]: unknown;
}

/** auth on a port of its own over the test database, with these limits; its log lines kept. */
async function startAuth(overrides: Record<string, string> = {}, sweepEveryMs?: number) {
  const lines: LogLine[] = [];
  const log = createLogger("auth", "debug", { write: (line: string) => void lines.push(JSON.parse(line)) });
  const auth = await createAuth({
    config: authTestConfig(database.url, { GATEWAY_SECRET: SECRET, AMQP_URL: vhost.url, ...overrides }),
    log,
    sweepEveryMs,
  });
  auth.app.listen({ port: 0, hostname: "127.0.0.1" });
  const url = `http://127.0.0.1:${auth.app.server!.port}`;
  const service = {
    ...auth,
    url,
    lines,
    async shutdown() {
      await auth.app.stop(true);
      await auth.close();
    },
  };
  running.push(service);
  return service;
}
type Auth = Awaited<ReturnType<typeof startAuth>>;
/** The gateway's check of auth's tokens (its account routes need one). */
const jwksOf = (auth: Auth) => jwksVerifier(`${auth.url}/.well-known/jwks.json`);

/** As the gateway names a client to auth. */
const from = (address: string, secret = SECRET) => ({ "x-client-address": address, "x-gateway-secret": secret });
const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
const login = (auth: Auth, email: string, password: string, headers: Record<string, string> = {}) =>
  post(`${auth.url}/login`, { email, password }, headers);
const register = (auth: Auth, email: string, headers: Record<string, string> = {}) =>
  post(`${auth.url}/register`, { email, password: PASSWORD }, headers);
let emails = 0;
const newEmail = (name = "user") => `${name}${++emails}.${process.pid}.${Date.now()}@example.com`;
const statuses = (answers: Response[]) => answers.map((answer) => answer.status);

async function sql<T>(query: string, values: unknown[] = []): Promise<T> {
  const connection = await createConnection({ uri: database.url, timezone: "Z" });
  try {
    return (await connection.query(query, values))[0] as T;
  } finally {
    await connection.end();
  }
}
const attemptsOf = async (email: string) =>
  (await sql<{ n: number }[]>("SELECT COUNT(*) AS n FROM login_attempts WHERE email = ?", [email]))[0]!.n;

/** The sum of a metric's samples in auth's /metrics (its metrics app) whose labels include `labels`. */
async function metric(auth: Auth, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await auth.metricsApp.handle(new Request("http://localhost/metrics"))).text();
  return text
    .split("\n")
    .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
    .filter((line) => Object.entries(labels).every(([label, value]) => line.includes(`${label}="${value}"`)))
    .reduce((sum, line) => sum + Number(line.split(" ").at(-1)), 0);
}

describe("password hashing is not an open tap (finding 4)", () => {
  test("with every hashing slot busy and as many waiting, logins and registrations are refused at once with 503 and Retry-After, and not counted as failures", async () => {
    // One slot (and so one place to wait), a hash slow enough (256 MiB) that the burst lands while it is held.
    const auth = await startAuth({
      HASH_CONCURRENCY: "1",
      ARGON2_MEMORY_KIB: "262144",
      ARGON2_TIME_COST: "2",
      LOGIN_RATE_PER_MINUTE: "3",
    });
    const until = async (name: string, value: number) => {
      const deadline = Date.now() + 10_000;
      while ((await metric(auth, name)) < value && Date.now() < deadline) await Bun.sleep(5);
      expect(await metric(auth, name)).toBe(value);
    };
    const owner = newEmail("owner");
    const holding = register(auth, owner, from("192.0.2.1"));
    await until("auth_password_hashes_running", 1);
    const waiting = login(auth, newEmail("patient"), "a guess", from("192.0.2.2"));
    await until("auth_password_hashes_waiting", 1);

    const randomEmails = Array.from({ length: 20 }, () => newEmail("random"));
    const burst = await Promise.all([
      ...randomEmails.map((email, i) => login(auth, email, "guess guess", from(`198.51.100.${i + 1}`))),
      register(auth, newEmail("late"), from("198.51.100.99")),
    ]);
    expect(statuses(burst)).toEqual(burst.map(() => 503));
    for (const answer of burst) {
      expect(answer.headers.get("retry-after")).toBe("1");
      expect(await answer.json()).toMatchObject({
        status: 503,
        retryAfter: 1,
        detail: expect.stringContaining("try again"),
      });
    }
    // a flood from one address spends its own rate on the refusals, then gets 429 without touching the slots
    const flood = [];
    for (let i = 0; i < 4; i++) flood.push(await login(auth, newEmail("flood"), "a guess", from("203.0.113.99")));
    expect(statuses(flood)).toEqual([503, 503, 503, 429]);

    expect(statuses([await holding, await waiting])).toEqual([201, 401]); // the one that waited was served
    for (const email of randomEmails) expect(await attemptsOf(email)).toBe(0);
    expect(await metric(auth, "auth_requests_refused_total", { route: "login", reason: "hashing_full" })).toBe(23);
    // the slot is free again: the owner logs in
    expect((await login(auth, owner, PASSWORD, from("192.0.2.1"))).status).toBe(200);
  }, 30_000);
});

describe("the limits by themselves", () => {
  test("hashing slots: so many at once, as many waiting in turn, the rest refused; a slot passes straight on", async () => {
    const slots = hashSlots(1, 1);
    const first = await slots.take();
    const second = slots.take();
    expect(await slots.take()).toBeUndefined();
    expect([slots.taken, slots.waiting]).toEqual([1, 1]);
    first!();
    first!(); // releasing twice frees nothing more
    const handedOn = await second;
    expect([slots.taken, slots.waiting]).toEqual([1, 0]);
    handedOn!();
    expect(slots.taken).toBe(0);
  });

  test("rates: a burst of `limit`, then one per window/limit; refilled buckets are forgotten; keys are bounded", () => {
    let now = 0;
    const rate = rateLimiter({ limit: 3, windowMs: 60_000, maxKeys: 2, now: () => now });
    expect([rate.take("a"), rate.take("a"), rate.take("a")]).toEqual([undefined, undefined, undefined]);
    expect(rate.take("a")).toEqual({ retryAfterSeconds: 20, first: true });
    expect(rate.take("a")).toEqual({ retryAfterSeconds: 20, first: false });
    now += 20_000;
    expect(rate.take("a")).toBeUndefined();
    expect(rate.take("a")).toEqual({ retryAfterSeconds: expect.closeTo(20), first: true });
    expect(rate.take("b")).toBeUndefined();
    expect(rate.take("c")).toBeUndefined(); // past maxKeys: the oldest key goes
    expect(rate.size).toBe(2);
    now += 60_000;
    rate.prune();
    expect(rate.size).toBe(0);
  });
});

describe("logins and registrations are rated per client address (finding 4)", () => {
  let auth: Auth;
  beforeAll(async () => {
    auth = await startAuth({ LOGIN_RATE_PER_MINUTE: "3", REGISTER_RATE_PER_HOUR: "2" });
  });

  test("past LOGIN_RATE_PER_MINUTE one address gets 429 with Retry-After, hashing nothing; other addresses log in", async () => {
    const owner = newEmail("owner");
    expect((await register(auth, owner, from("192.0.2.10"))).status).toBe(201);
    const attacker = from("203.0.113.7");
    const guesses = [];
    for (let i = 0; i < 3; i++) guesses.push(await login(auth, newEmail("random"), "a guess", attacker));
    expect(statuses(guesses)).toEqual([401, 401, 401]);
    const limited = await login(auth, newEmail("random"), "a guess", attacker);
    expect(limited.status).toBe(429);
    const retryAfter = Number(limited.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(20); // one login's worth of a minute's 3
    expect(await limited.json()).toMatchObject({ status: 429, retryAfter });
    expect((await login(auth, owner, PASSWORD, from("192.0.2.10"))).status).toBe(200);
  });

  test("past REGISTER_RATE_PER_HOUR one address gets 429; another address registers", async () => {
    const spammer = from("203.0.113.8");
    expect(statuses([await register(auth, newEmail(), spammer), await register(auth, newEmail(), spammer)])).toEqual([
      201, 201,
    ]);
    const limited = await register(auth, newEmail(), spammer);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(60);
    expect((await register(auth, newEmail(), from("192.0.2.11"))).status).toBe(201);
  });

  test("IPv6 clients count per /64: the addresses of one block share a rate, the next block has its own", async () => {
    const block = ["2001:db8:7:1::a", "2001:db8:7:1::b", "2001:db8:7:1:ffff::1", "2001:db8:7:1::c"];
    const answers = [];
    for (const address of block) answers.push(await login(auth, newEmail(), "a guess", from(address)));
    expect(statuses(answers)).toEqual([401, 401, 401, 429]);
    expect((await login(auth, newEmail(), "a guess", from("2001:db8:7:2::a"))).status).toBe(401);
  });
});

describe("only the gateway names the client (finding 4)", () => {
  test("X-Client-Address sent straight to auth without the secret, or with a wrong one, counts as the connection's own address", async () => {
    const auth = await startAuth({ LOGIN_RATE_PER_MINUTE: "3" });
    const forged = [
      { "x-client-address": "198.51.100.1" },
      from("198.51.100.2", "not-the-secret-at-all"),
      { "x-client-address": "198.51.100.3", "x-gateway-secret": "" },
      from("198.51.100.4", `${SECRET}x`),
    ];
    const answers = [];
    for (const headers of forged) answers.push(await login(auth, newEmail(), "a guess", headers));
    expect(statuses(answers)).toEqual([401, 401, 401, 429]);
    const refused = auth.lines.filter((line) => line.event === "client_address.refused");
    expect(refused.map((line) => line.counted)).toEqual(["127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.1"]);
    // the gateway, with the secret, names a client of its own
    expect((await login(auth, newEmail(), "a guess", from("198.51.100.5"))).status).toBe(401);
  });

  test("through the gateway each client counts apart; a client's own X-Forwarded-For or X-Client-Address changes nothing", async () => {
    const auth = await startAuth({ LOGIN_RATE_PER_MINUTE: "3" });
    const log = createLogger("gateway", "silent");
    const gateway = new Elysia()
      .use(problems(log))
      .use(authRoutes({ authUrl: auth.url, log, gatewaySecret: SECRET, verifier: jwksOf(auth) }))
      .listen({ port: 0, hostname: "127.0.0.1" });
    running.push({ shutdown: () => gateway.stop(true) });
    const viaGateway = (headers: Record<string, string>) =>
      post(`http://127.0.0.1:${gateway.server!.port}/auth/login`, { email: newEmail(), password: "a guess" }, headers);
    const answers = [];
    for (let i = 1; i <= 4; i++)
      answers.push(await viaGateway({ "x-forwarded-for": `198.51.100.${i}`, ...from(`198.51.100.${i + 10}`) }));
    expect(statuses(answers)).toEqual([401, 401, 401, 429]);
  });

  test("behind a proxy listed in TRUSTED_PROXIES, the address that proxy appended is the client", async () => {
    const auth = await startAuth({ LOGIN_RATE_PER_MINUTE: "3" });
    const log = createLogger("gateway", "silent");
    const gateway = new Elysia()
      .use(problems(log))
      .use(
        authRoutes({
          authUrl: auth.url,
          log,
          gatewaySecret: SECRET,
          trustedProxies: "127.0.0.1",
          verifier: jwksOf(auth),
        }),
      )
      .listen({ port: 0, hostname: "127.0.0.1" });
    running.push({ shutdown: () => gateway.stop(true) });
    const viaProxy = (forwardedFor: string) =>
      post(
        `http://127.0.0.1:${gateway.server!.port}/auth/login`,
        { email: newEmail(), password: "a guess" },
        { "x-forwarded-for": forwardedFor },
      );
    // the client writes a different left-most entry each time; the proxy appends the same address
    const answers = [];
    for (let i = 1; i <= 4; i++) answers.push(await viaProxy(`10.9.9.${i}, 203.0.113.50`));
    expect(statuses(answers)).toEqual([401, 401, 401, 429]);
    expect((await viaProxy("203.0.113.51")).status).toBe(401);
  });

  test("the rules, address by address", () => {
    const headers = (entries: Record<string, string>) => new Headers(entries);
    expect(clientAddress(headers(from("::ffff:203.0.113.9")), "10.0.0.2", SECRET)).toEqual({ key: "203.0.113.9" });
    expect(clientAddress(headers({ "x-client-address": "203.0.113.9" }), "10.0.0.2", SECRET)).toEqual({
      key: "10.0.0.2",
      refused: "203.0.113.9",
    });
    expect(clientAddress(headers(from("not an address")), "10.0.0.2", SECRET).key).toBe("10.0.0.2");
    // no secret configured: believed from this machine only (development), never from elsewhere
    expect(clientAddress(headers({ "x-client-address": "203.0.113.9" }), "127.0.0.1", undefined).key).toBe(
      "203.0.113.9",
    );
    expect(clientAddress(headers({ "x-client-address": "203.0.113.9" }), "10.0.0.2", undefined).key).toBe("10.0.0.2");
    expect(clientAddress(headers({}), undefined, SECRET).key).toBe("unknown");
    expect(addressKey("2001:db8:1:2:3:4:5:6")).toBe("2001:db8:1:2::/64");
    const proxies = parseProxies("10.0.0.0/8, ::1");
    expect(forwardedClient("10.1.1.1", "1.1.1.1, 203.0.113.5", proxies)).toBe("203.0.113.5");
    expect(forwardedClient("10.1.1.1", "203.0.113.5, 10.2.2.2", proxies)).toBe("203.0.113.5");
    expect(forwardedClient("198.51.100.1", "203.0.113.5", proxies)).toBe("198.51.100.1");
    expect(forwardedClient("10.1.1.1", "garbage", proxies)).toBe("10.1.1.1");
    expect(() => parseConfig(GatewayConfig, { TRUSTED_PROXIES: "10.0.0.0/8, proxy.example" })).toThrow(
      "config: TRUSTED_PROXIES",
    );
    expect(() => parseConfig(GatewayConfig, { GATEWAY_SECRET: "short" })).toThrow("config: GATEWAY_SECRET");
  });
});

describe("old login attempts do not pile up (finding 4)", () => {
  test("a sweep deletes the attempts older than the lockout window and keeps the rest", async () => {
    const auth = await startAuth();
    const [old1, old2, fresh] = [newEmail(), newEmail(), newEmail()];
    for (const email of [old1, old2, fresh]) expect((await login(auth, email, "a guess")).status).toBe(401);
    await sql("UPDATE login_attempts SET attempted_at = attempted_at - INTERVAL 16 MINUTE WHERE email IN (?, ?)", [
      old1,
      old2,
    ]);
    await auth.sweep();
    expect([await attemptsOf(old1), await attemptsOf(old2), await attemptsOf(fresh)]).toEqual([0, 0, 1]);
  });

  test("a started auth sweeps on its own schedule, more than one batch at a time", async () => {
    const email = newEmail("flood");
    // 12,000 attempts of one flood, 20 minutes old: more than two of the sweep's batches
    const rows = Array.from({ length: 1000 }, () => "(?, '203.0.113.1', UTC_TIMESTAMP(3) - INTERVAL 20 MINUTE)");
    for (let i = 0; i < 12; i++)
      await sql(
        `INSERT INTO login_attempts (email, client_address, attempted_at) VALUES ${rows.join(",")}`,
        rows.map(() => email),
      );
    expect(await attemptsOf(email)).toBe(12_000);
    const auth = await startAuth({}, 50);
    await auth.start();
    const deadline = Date.now() + 15_000;
    while ((await attemptsOf(email)) > 0 && Date.now() < deadline) await Bun.sleep(50);
    expect(await attemptsOf(email)).toBe(0);
    await auth.stop();
  }, 30_000);
});

describe("the lockout locks out the guesser, not the owner (finding 5)", () => {
  let auth: Auth;
  beforeAll(async () => {
    auth = await startAuth();
  });

  test("a stranger's wrong passwords lock the stranger's address out of the account; the owner logs in throughout", async () => {
    const owner = newEmail("owner");
    await register(auth, owner, from("192.0.2.20"));
    const stranger = from("203.0.113.20");
    const guesses = [];
    for (let i = 0; i < LOCKOUT.maxFailures; i++) guesses.push(await login(auth, owner, `guess ${i}`, stranger));
    expect(statuses(guesses)).toEqual(guesses.map(() => 401));
    // the stranger is locked out, even with the right password
    const locked = await login(auth, owner, PASSWORD, stranger);
    expect(locked.status).toBe(429);
    expect(Number(locked.headers.get("retry-after"))).toBeGreaterThan(LOCKOUT.windowMs / 1000 - 60);
    expect((await login(auth, owner, PASSWORD, from("192.0.2.20"))).status).toBe(200);
    // ~6 requests a quarter hour keep the stranger locked, and nobody else
    for (let i = 0; i < 6; i++) expect((await login(auth, owner, "more guessing", stranger)).status).toBe(429);
    expect((await login(auth, owner, PASSWORD, from("192.0.2.20"))).status).toBe(200);
    expect((await login(auth, owner, PASSWORD, from("192.0.2.21"))).status).toBe(200);
  });

  test("the lock lives in MySQL: another auth replica sees it", async () => {
    const owner = newEmail("owner");
    await register(auth, owner);
    for (let i = 0; i < LOCKOUT.maxFailures; i++) await login(auth, owner, "guess", from("203.0.113.21"));
    const replica = await startAuth();
    expect((await login(replica, owner, PASSWORD, from("203.0.113.21"))).status).toBe(429);
    expect((await login(replica, owner, PASSWORD, from("192.0.2.22"))).status).toBe(200);
  });

  test("clearLockout, which the password reset will call, lifts the account's lock for every address", async () => {
    const owner = newEmail("owner");
    await register(auth, owner);
    const [home, elsewhere] = [from("192.0.2.23"), from("203.0.113.23")];
    for (const where of [home, elsewhere])
      for (let i = 0; i <= LOCKOUT.maxFailures; i++) await login(auth, owner, "forgotten", where);
    expect(statuses([await login(auth, owner, PASSWORD, home), await login(auth, owner, PASSWORD, elsewhere)])).toEqual(
      [429, 429],
    );
    await auth.accounts.clearLockout(owner);
    expect(statuses([await login(auth, owner, PASSWORD, home), await login(auth, owner, PASSWORD, elsewhere)])).toEqual(
      [200, 200],
    );
  });
});

describe("HTTP Basic credentials are checked like a JSON body (finding 10)", () => {
  test("a 300-character email is 422 naming the field, not a 500, and no SQL is logged", async () => {
    const auth = await startAuth();
    const long = `${"a".repeat(288)}@example.com`;
    const basic = (email: string, password: string) =>
      fetch(`${auth.url}/login`, {
        method: "POST",
        headers: { authorization: `Basic ${btoa(`${email}:${password}`)}` },
      });
    for (const [answer, field] of [
      [await basic(long, PASSWORD), "email"],
      [await login(auth, long, PASSWORD), "email"],
      [await basic("ok@example.com", "p".repeat(300)), "password"],
    ] as const) {
      expect(answer.status).toBe(422);
      expect(answer.headers.get("content-type")).toStartWith("application/problem+json");
      const problem = (await answer.json()) as { errors: { field: string; message: string }[] };
      expect(problem.errors).toEqual([
        { field, message: `must be at most ${field === "email" ? 254 : 256} characters` },
      ]);
    }
    expect(auth.lines.filter((line) => line.level === "error" || line.event === "http.unhandled_error")).toEqual([]);
    expect(JSON.stringify(auth.lines)).not.toMatch(/insert into|login_attempts/i);
    // through the gateway's reference-style login too
    const log = createLogger("gateway", "silent");
    const gateway = new Elysia()
      .use(problems(log))
      .use(authRoutes({ authUrl: auth.url, log, gatewaySecret: SECRET, verifier: jwksOf(auth) }));
    const viaGateway = await gateway.handle(
      new Request("http://gateway/login", {
        method: "POST",
        headers: { authorization: `Basic ${btoa(`${long}:${PASSWORD}`)}` },
      }),
    );
    expect(viaGateway.status).toBe(422);
  });
});
