// auth: accounts (registration, the address's verification, passwords, deletion), login
// (JSON and HTTP Basic) with sessions (rotating refresh tokens), and JWT signing. Owns MySQL.
// Tokens are signed with an asymmetric key whose public half is served as a JWKS,
// so the gateway verifies them locally without calling this service per request.
// Password hashing is bounded (auth/admission.ts): so many hashes at once, so many
// logins and registrations per client address, which the gateway names (auth/client-address.ts).
// Emails (verification, reset) go out through the `email` queue to the notifier; a deleted
// account's MongoDB data through the `account` queue to the converter. API keys for
// programs, and the gateway's lookup of them: auth/api-keys.ts.
import { availableParallelism } from "node:os";
import { Type } from "@sinclair/typebox";
import { drizzle } from "drizzle-orm/mysql2";
import { Elysia, t } from "elysia";
import { createPool } from "mysql2/promise";
import { accessTokens } from "./auth/access-tokens.ts";
import { accountRoutes } from "./auth/account-routes.ts";
import { accountStore, EmailTaken, HashingBusy, LOCKOUT, type LoginOutcome } from "./auth/accounts.ts";
import { admission } from "./auth/admission.ts";
import { apiKeyRoutes, apiKeyStore } from "./auth/api-keys.ts";
import { background } from "./auth/background.ts";
import { credentialsOf, normaliseEmail } from "./auth/credentials.ts";
import { accountDeletion } from "./auth/deletion.ts";
import { emailSender, emailTokenStore } from "./auth/email-tokens.ts";
import { loadSigningKey, type SigningKey } from "./auth/keys.ts";
import { hashSlots } from "./auth/limits.ts";
import type { AuthParts } from "./auth/parts.ts";
import { passwordRoutes } from "./auth/passwords.ts";
import { sessionStore } from "./auth/session-store.ts";
import { sessionRoutes, startSession } from "./auth/sessions.ts";
import { verificationRoutes } from "./auth/verification.ts";
import { migrateDatabase, NOT_MIGRATED_HINT, pendingMigrations } from "./db/migrate.ts";
import { Credentials, LoginBody, Registered, Session } from "./lib/account-models.ts";
import { AmqpUrl, Flag, GatewaySecret, LogLevel, MetricsPort, MysqlUrl, Port } from "./lib/config.ts";
import { apiDocs } from "./lib/docs.ts";
import { health, type ReadinessChecks, startupCheck } from "./lib/health.ts";
import { limitedJson } from "./lib/json.ts";
import { createLogger, type Logger } from "./lib/log.ts";
import { createMetrics } from "./lib/metrics.ts";
import { Conflict, Problem, problems, TooManyRequests, Unauthorized } from "./lib/problem.ts";
import { CONNECT_IN_BACKGROUND, connectQueue, type Queue, type QueueOptions } from "./lib/queue.ts";
import { runService } from "./lib/runner.ts";
import { MAX_TOKEN_SECONDS } from "./lib/tokens.ts";

// ── config ──────────────────────────────────────────────────────────────────
export const AuthConfig = Type.Object({
  PORT: Port(3001),
  METRICS_PORT: MetricsPort(9101),
  LOG_LEVEL: LogLevel,
  MYSQL_URL: MysqlUrl,
  AMQP_URL: AmqpUrl,
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

// ── models: the account routes' (lib/account-models.ts), and the JWKS ─────────
const Jwks = t.Object({ keys: t.Array(t.Record(t.String(), t.Unknown())) });

const AUTH_DOCS = {
  title: "m3dio auth",
  description: "Internal: accounts, login, sessions and token signing. The public API is the gateway's.",
};

/** Each route's schemas and OpenAPI text, beside the models they use. */
const docs = {
  register: {
    body: Credentials,
    response: { 201: Registered, 409: Problem, 422: Problem, 429: Problem, 503: Problem },
    detail: { tags: ["auth"], summary: "Create an account" },
  },
  login: {
    body: t.Optional(LoginBody),
    response: { 200: Session, 401: Problem, 422: Problem, 429: Problem, 503: Problem },
    detail: {
      tags: ["auth"],
      summary: "Log in with JSON credentials or HTTP Basic; answers a bearer token and a refresh token",
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
  /** The broker client; without one, auth connects to AMQP_URL itself (in the background) and closes it in close(). */
  queue?: Queue;
  /** How often the sweeps run (1 minute): expired rows, idle rate buckets, unfinished emails and deletions. */
  sweepEveryMs?: number;
}

/**
 * auth answers within the gateway's 5 s: a publish gives up after 2 s, leaving its
 * email or deletion marked in MySQL for the sweeper to finish.
 */
export const AUTH_QUEUE: QueueOptions = { ...CONNECT_IN_BACKGROUND, publishTimeoutMs: 2000 };

/**
 * auth owns MySQL, so it opens its own pool (nothing else may reach it) and closes it
 * in `close()`, which the runner calls after the HTTP server has stopped.
 */
export async function createAuth({
  config,
  log = createLogger("auth", config.LOG_LEVEL),
  signingKey,
  queue: givenQueue,
  sweepEveryMs = 60_000,
}: AuthDeps) {
  const pool = createPool({ uri: config.MYSQL_URL, timezone: "Z", connectionLimit: 10 });
  const queue = givenQueue ?? (await connectQueue(config.AMQP_URL, log, AUTH_QUEUE));
  const key = signingKey ?? (await loadSigningKey(config, log));
  const slots = hashSlots(config.HASH_CONCURRENCY);
  const cost = { memoryCost: config.ARGON2_MEMORY_KIB, timeCost: config.ARGON2_TIME_COST };
  const db = drizzle(pool);
  const metrics = createMetrics("auth");
  const emailTokens = emailTokenStore(db);
  const parts: AuthParts = {
    log,
    accounts: accountStore(db, cost, slots),
    apiKeys: apiKeyStore(db),
    sessions: sessionStore(db),
    emailTokens,
    sender: emailSender({ tokens: emailTokens, queue, log }),
    deletion: accountDeletion({ db, queue, log }),
    tokens: accessTokens(key, config.JWT_TTL_SECONDS),
    gate: admission({
      log,
      registry: metrics.registry,
      slots,
      gatewaySecret: config.GATEWAY_SECRET,
      loginsPerMinute: config.LOGIN_RATE_PER_MINUTE,
      registrationsPerHour: config.REGISTER_RATE_PER_HOUR,
    }),
    background: background(log),
  };
  const startup = startupCheck();
  const query = (sql: string) => pool.query(sql);
  const checks: ReadinessChecks = {
    startup: startup.check,
    mysql: () => query("SELECT 1"),
    schema: async () => {
      const pending = await pendingMigrations(query);
      if (pending) throw new Error(`${pending} migration(s) not applied: ${NOT_MIGRATED_HINT}`);
    },
    rabbitmq: () => queue.ping(),
  };
  const app = authApp({ parts, metrics, checks, key, gatewaySecret: config.GATEWAY_SECRET });
  if (!config.GATEWAY_SECRET)
    log.warn(
      { event: "gateway_secret.unset" },
      "GATEWAY_SECRET is not set: client addresses are believed only from this machine (development)",
    );

  /**
   * What any replica may do every minute (doing it twice is harmless): expired login
   * attempts, sessions and links out of MySQL, idle rate buckets out of memory, emails
   * the broker never took published again, and deletions a crash interrupted finished.
   */
  async function sweep(): Promise<void> {
    parts.gate.prune();
    const swept = {
      attempts: await parts.accounts.sweepAttempts(),
      sessions: await parts.sessions.sweep(),
      links: await emailTokens.sweep(),
      emails: await parts.sender.sweep(),
      deletions: await parts.deletion.sweep(),
    };
    if (Object.values(swept).some(Boolean)) log.debug({ event: "auth.swept", ...swept }, "swept");
  }
  let sweeper: ReturnType<typeof setInterval> | undefined;
  const sweepLogged = () =>
    sweep().catch((error) => log.warn({ event: "auth.sweep_failed", err: error }, "sweep failed"));

  return {
    app,
    metricsApp: metrics.app,
    signingKey: key,
    /** The account store: a password reset calls `accounts.clearLockout(email)`. */
    accounts: parts.accounts,
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
        if (!sweeper) void sweepLogged(); // at once: what a crash left unfinished is finished now
        sweeper ??= setInterval(sweepLogged, sweepEveryMs);
        sweeper.unref();
      }),
    /** Stops sweeping, and lets the work requests left behind (reset emails) finish. */
    async stop() {
      clearInterval(sweeper);
      await parts.background.settled();
    },
    /** Ends the broker connection (if auth made it) and the MySQL pool. */
    async close() {
      clearInterval(sweeper);
      await parts.background.settled();
      if (!givenQueue) await queue.close();
      await pool.end();
    },
  };
}

interface AppParts {
  parts: AuthParts;
  key: SigningKey;
  metrics: ReturnType<typeof createMetrics>;
  checks: ReadinessChecks;
  gatewaySecret: string | undefined;
}

/** auth's routes: each answers from the stores and the signing key, once the gate lets it through. */
function authApp({ parts, key, metrics, checks, gatewaySecret }: AppParts) {
  const { log, accounts, gate, sender } = parts;
  return new Elysia({ name: "auth" })
    .use(problems(log, { unavailable: isMysqlUnavailable }))
    .use(metrics.plugin)
    .use(apiDocs(AUTH_DOCS))
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
          log.info({ event: "user.registered", userId: String(user.id) }, "user registered");
          // The account stands either way: a link that could not even be issued is sent again on request.
          await sender
            .send(user, "verify")
            .catch((err) => log.warn({ event: "email.issue_failed", userId: String(user.id), err }, "no link made"));
          return status(201, { id: user.id, email: user.email, verified: false });
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
      async ({ body, headers, request, server }) => {
        const { email, password } = credentialsOf(headers.authorization, body);
        const client = gate.admit("login", request, server);
        const user = loggedIn(await accounts.login(email, password, client), { email, client, gate, log });
        log.info({ event: "login.succeeded", userId: String(user.id) }, "login");
        return startSession(parts, user);
      },
      { parse: limitedJson(), ...docs.login },
    )
    .use(sessionRoutes(parts))
    .use(verificationRoutes(parts))
    .use(passwordRoutes(parts))
    .use(accountRoutes(parts))
    .use(apiKeyRoutes(parts, { gatewaySecret }))
    .get("/.well-known/jwks.json", () => ({ keys: [key.publicJwk] }), docs.jwks);
}

/** The user a login's outcome lets in; otherwise the answer why not (503 busy, 429 locked, 401 wrong), logged. */
function loggedIn(
  outcome: LoginOutcome,
  { email, client, gate, log }: { email: string; client: string; gate: AuthParts["gate"]; log: Logger },
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
