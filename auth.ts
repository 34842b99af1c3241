// auth: registration, login (JSON and HTTP Basic) and JWT signing. Owns MySQL.
// Tokens are signed with an asymmetric key whose public half is served as a JWKS,
// so the gateway verifies them locally without calling this service per request.
// Password hashing is bounded (auth/admission.ts): so many hashes at once, so many
// logins and registrations per client address, which the gateway names (auth/client-address.ts).
import { randomUUID } from "node:crypto";
import { availableParallelism } from "node:os";
import { jwt } from "@elysiajs/jwt";
import { Type } from "@sinclair/typebox";
import { drizzle } from "drizzle-orm/mysql2";
import { Elysia, t } from "elysia";
import * as jose from "jose";
import { createPool } from "mysql2/promise";
import {
  type AccountStore,
  accountStore,
  EmailTaken,
  HashingBusy,
  LOCKOUT,
  type LoginOutcome,
} from "./auth/accounts.ts";
import { type Admission, admission } from "./auth/admission.ts";
import { credentialsOf, LoginBody, normaliseEmail } from "./auth/credentials.ts";
import { loadSigningKey, type SigningKey } from "./auth/keys.ts";
import { hashSlots } from "./auth/limits.ts";
import { migrateDatabase, NOT_MIGRATED_HINT, pendingMigrations } from "./db/migrate.ts";
import { Flag, GatewaySecret, LogLevel, MetricsPort, MysqlUrl, Port } from "./lib/config.ts";
import { apiDocs } from "./lib/docs.ts";
import { health, type ReadinessChecks, startupCheck } from "./lib/health.ts";
import { limitedJson } from "./lib/json.ts";
import { createLogger, type Logger } from "./lib/log.ts";
import { createMetrics } from "./lib/metrics.ts";
import { Conflict, Problem, problems, TooManyRequests, Unauthorized } from "./lib/problem.ts";
import { runService } from "./lib/runner.ts";
import { MAX_TOKEN_SECONDS, TOKEN_AUDIENCE, TOKEN_ISSUER } from "./lib/tokens.ts";

// ── config ──────────────────────────────────────────────────────────────────
export const AuthConfig = Type.Object({
  PORT: Port(3001),
  METRICS_PORT: MetricsPort(9101),
  LOG_LEVEL: LogLevel,
  MYSQL_URL: MysqlUrl,
  MIGRATE_ON_START: Flag(false, "apply migrations at start"),
  JWT_PRIVATE_KEY: Type.Optional(Type.String({ minLength: 1, description: "signing key, PEM (PKCS#8) or JWK JSON" })),
  JWT_PRIVATE_KEY_FILE: Type.Optional(
    Type.String({ minLength: 1, description: "path to a file holding the signing key" }),
  ),
  JWT_TTL_SECONDS: Type.Integer({
    minimum: 60,
    maximum: MAX_TOKEN_SECONDS,
    default: 3600,
    description: "token lifetime",
  }),
  // argon2id's cost. The defaults are Bun's (and OWASP's minimum for argon2id is lower);
  // tests lower them so that every test user does not pay the full price.
  ARGON2_MEMORY_KIB: Type.Integer({ minimum: 1024, default: 65536, description: "argon2id memory cost in KiB" }),
  ARGON2_TIME_COST: Type.Integer({ minimum: 1, maximum: 10, default: 2, description: "argon2id iterations" }),
  // Hashes beyond the cores only queue behind each other while memory grows: as many again
  // may wait their turn (auth/limits.ts), past that 503 at once.
  HASH_CONCURRENCY: Type.Integer({
    minimum: 1,
    maximum: 1024,
    default: availableParallelism(),
    description: "password hashes at once (default: the number of CPUs)",
  }),
  LOGIN_RATE_PER_MINUTE: Type.Integer({ minimum: 1, default: 20, description: "logins per client address a minute" }),
  REGISTER_RATE_PER_HOUR: Type.Integer({
    minimum: 1,
    default: 10,
    description: "registrations per client address an hour",
  }),
  GATEWAY_SECRET: GatewaySecret,
});
export type AuthConfig = typeof AuthConfig.static;

export { LOCKOUT, normaliseEmail };

// ── models ──────────────────────────────────────────────────────────────────
const Email = t.String({
  format: "email",
  maxLength: 254,
  error: "must be an email address",
  examples: ["ada@example.com"],
});
const Password = t.String({ minLength: 8, maxLength: 256, error: "must be 8 to 256 characters" });
export const Credentials = t.Object({ email: Email, password: Password });
export const UserView = t.Object({ id: t.Integer(), email: t.String() });
export const TokenView = t.Object({
  token: t.String({ description: "a JWT to send as `Authorization: Bearer <token>`" }),
  expiresAt: t.String({ format: "date-time" }),
});
const Jwks = t.Object({ keys: t.Array(t.Record(t.String(), t.Unknown())) });

const AUTH_DOCS = {
  title: "m3dio auth",
  description: "Internal: registration, login and token signing. The public API is the gateway's.",
};

/** Each route's schemas and OpenAPI text, beside the models they use. */
const docs = {
  register: {
    body: Credentials,
    response: { 201: UserView, 409: Problem, 422: Problem, 429: Problem, 503: Problem },
    detail: { tags: ["auth"], summary: "Create an account" },
  },
  login: {
    body: t.Optional(LoginBody),
    response: { 200: TokenView, 401: Problem, 422: Problem, 429: Problem, 503: Problem },
    detail: {
      tags: ["auth"],
      summary: "Log in with JSON credentials or HTTP Basic; answers a bearer token",
      security: [{}, { basic: [] }] as Record<string, string[]>[],
    },
  },
  jwks: {
    response: Jwks,
    detail: { tags: ["auth"], summary: "The public keys that verify this service's tokens" },
  },
};

// ── errors: Conflict, TooManyRequests, Unauthorized (lib/problem.ts); HashingBusy, EmailTaken (auth/accounts.ts) ──
/** MySQL errors that mean "not there (yet)", not "this request is wrong": answered 503, like any store being away. */
const MYSQL_AWAY = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "PROTOCOL_CONNECTION_LOST",
  "ER_CON_COUNT_ERROR",
  "ER_BAD_DB_ERROR", // not created yet: the migration creates it
  "ER_NO_SUCH_TABLE", // not migrated yet
]);

/** Walks the cause chain (drizzle wraps the driver's error) for a code in MYSQL_AWAY. */
export function isMysqlUnavailable(error: unknown): boolean {
  for (let current = error, depth = 0; current && depth < 5; depth++) {
    if (MYSQL_AWAY.has((current as { code?: string }).code ?? "")) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

// ── the app ─────────────────────────────────────────────────────────────────
export interface AuthDeps {
  config: AuthConfig;
  log?: Logger;
  signingKey?: SigningKey;
  /** How often expired login attempts and idle rate buckets are swept (1 minute). */
  sweepEveryMs?: number;
}

/**
 * auth owns MySQL, so it opens its own pool (nothing else may reach it) and closes it
 * in `close()`, which the runner calls after the HTTP server has stopped.
 */
export async function createAuth({
  config,
  log = createLogger("auth", config.LOG_LEVEL),
  signingKey,
  sweepEveryMs = 60_000,
}: AuthDeps) {
  const pool = createPool({ uri: config.MYSQL_URL, timezone: "Z", connectionLimit: 10 });
  const key = signingKey ?? (await loadSigningKey(config, log));
  const slots = hashSlots(config.HASH_CONCURRENCY);
  const cost = { memoryCost: config.ARGON2_MEMORY_KIB, timeCost: config.ARGON2_TIME_COST };
  const accounts = accountStore(drizzle(pool), cost, slots);
  const metrics = createMetrics("auth");
  const gate = admission({
    log,
    registry: metrics.registry,
    slots,
    gatewaySecret: config.GATEWAY_SECRET,
    loginsPerMinute: config.LOGIN_RATE_PER_MINUTE,
    registrationsPerHour: config.REGISTER_RATE_PER_HOUR,
  });
  const startup = startupCheck();
  const query = (sql: string) => pool.query(sql);
  const checks: ReadinessChecks = {
    startup: startup.check,
    mysql: () => query("SELECT 1"),
    schema: async () => {
      const pending = await pendingMigrations(query);
      if (pending) throw new Error(`${pending} migration(s) not applied: ${NOT_MIGRATED_HINT}`);
    },
  };
  const app = authApp({ config, log, key, accounts, gate, metrics, checks });
  if (!config.GATEWAY_SECRET)
    log.warn(
      { event: "gateway_secret.unset" },
      "GATEWAY_SECRET is not set: client addresses are believed only from this machine (development)",
    );

  /** Expired login attempts out of MySQL (any replica may; deleting twice is harmless), idle rate buckets out of memory. */
  async function sweep(): Promise<void> {
    gate.prune();
    const deleted = await accounts.sweepAttempts();
    if (deleted) log.debug({ event: "login_attempts.swept", deleted }, "expired login attempts deleted");
  }
  let sweeper: ReturnType<typeof setInterval> | undefined;

  return {
    app,
    metricsApp: metrics.app,
    signingKey: key,
    /** The account store: a password reset calls `accounts.clearLockout(email)`. */
    accounts,
    sweep,
    /** Applies the migrations first when MIGRATE_ON_START is set (development, single replica); then sweeps every minute. */
    start: () =>
      startup.run(async () => {
        if (config.MIGRATE_ON_START) {
          await migrateDatabase(config.MYSQL_URL);
          log.info({ event: "db.migrated" }, "migrations applied");
        } else {
          const pending = await pendingMigrations(query);
          // Ready only once migrated (the schema check); the log says how, once.
          if (pending)
            log.warn({ event: "db.not_migrated", pending }, `the database is not migrated: ${NOT_MIGRATED_HINT}`);
        }
        sweeper ??= setInterval(() => {
          sweep().catch((error) => log.warn({ event: "login_attempts.sweep_failed", err: error }, "sweep failed"));
        }, sweepEveryMs);
        sweeper.unref();
      }),
    /** Stops sweeping; requests in flight are the runner's HTTP stop's to finish. */
    async stop() {
      clearInterval(sweeper);
    },
    /** Ends the MySQL pool. */
    async close() {
      clearInterval(sweeper);
      await pool.end();
    },
  };
}

interface AppParts {
  config: AuthConfig;
  log: Logger;
  key: SigningKey;
  accounts: AccountStore;
  gate: Admission;
  metrics: ReturnType<typeof createMetrics>;
  checks: ReadinessChecks;
}

/** auth's routes: each answers from the account store and the signing key, once the gate lets it through. */
function authApp({ config, log, key, accounts, gate, metrics, checks }: AppParts) {
  return new Elysia({ name: "auth" })
    .use(problems(log, { unavailable: isMysqlUnavailable }))
    .use(metrics.plugin)
    .use(apiDocs(AUTH_DOCS))
    .use(
      jwt({
        name: "tokens",
        secret: key.privateKey,
        alg: key.alg,
        kid: key.kid,
        iss: TOKEN_ISSUER,
        aud: TOKEN_AUDIENCE,
      }),
    )
    .use(health(checks))
    .onTransform(({ body }) => {
      // Normalise before validation, so " Ada@Example.COM " is ada@example.com everywhere.
      if (body && typeof body === "object" && "email" in body && typeof body.email === "string") {
        (body as { email: string }).email = normaliseEmail(body.email);
      }
    })
    .post(
      "/register",
      async ({ body, status, request, server }) => {
        gate.admit("registration", request, server);
        try {
          const user = await accounts.register(body.email, body.password);
          log.info({ event: "user.registered", userId: user.id }, "user registered");
          return status(201, user);
        } catch (error) {
          if (error instanceof EmailTaken) throw new Conflict("an account with this email already exists");
          if (error instanceof HashingBusy) throw gate.hashingFull("registration");
          throw error;
        }
      },
      { parse: limitedJson(), ...docs.register },
    )
    .post(
      "/login",
      async ({ body, headers, tokens, request, server }) => {
        const { email, password } = credentialsOf(headers.authorization, body);
        const client = gate.admit("login", request, server);
        const user = loggedIn(await accounts.login(email, password, client), { email, client, gate, log });
        const token = await tokens.sign({
          sub: String(user.id),
          email: user.email,
          jti: randomUUID(),
          exp: `${config.JWT_TTL_SECONDS}s`,
        });
        log.info({ event: "login.succeeded", userId: user.id }, "login");
        return { token, expiresAt: new Date(jose.decodeJwt(token).exp! * 1000).toISOString() };
      },
      { parse: limitedJson(), ...docs.login },
    )
    .get("/.well-known/jwks.json", () => ({ keys: [key.publicJwk] }), docs.jwks);
}

/** The user a login's outcome lets in; otherwise the answer why not (503 busy, 429 locked, 401 wrong), logged. */
function loggedIn(
  outcome: LoginOutcome,
  { email, client, gate, log }: { email: string; client: string; gate: AppParts["gate"]; log: Logger },
) {
  if (outcome.kind === "busy") throw gate.hashingFull("login");
  if (outcome.kind === "locked") {
    log.warn({ event: "login.locked", email, clientAddress: client }, "login locked out");
    throw new TooManyRequests(
      "too many failed logins for this account from your address; try again later",
      outcome.retryAfterSeconds,
    );
  }
  if (outcome.kind === "wrong") {
    log.info({ event: "login.failed", email }, "login failed");
    throw new Unauthorized("wrong email or password");
  }
  return outcome.user;
}

// ── start and graceful stop ─────────────────────────────────────────────────
if (import.meta.main) {
  await runService(
    "auth",
    AuthConfig,
    async (config, log) => {
      const auth = await createAuth({ config, log });
      return { service: auth, resources: [auth] };
    },
    () => ({ httpGraceMs: 20_000, deadlineMs: 30_000 }),
  );
}
