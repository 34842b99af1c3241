// auth: registration, login (JSON and HTTP Basic) and JWT signing. Owns MySQL.
// Tokens are signed with an asymmetric key whose public half is served as a JWKS,
// so the gateway verifies them locally without calling this service per request.
import { randomUUID } from "node:crypto";
import { jwt } from "@elysiajs/jwt";
import { Type } from "@sinclair/typebox";
import { drizzle } from "drizzle-orm/mysql2";
import { Elysia, t } from "elysia";
import * as jose from "jose";
import { createPool } from "mysql2/promise";
import { accountStore, EmailTaken, LOCKOUT } from "./auth/accounts.ts";
import { loadSigningKey, type SigningKey } from "./auth/keys.ts";
import { migrateDatabase } from "./db/migrate.ts";
import { Flag, LogLevel, MysqlUrl, Port } from "./lib/config.ts";
import { apiDocs } from "./lib/docs.ts";
import { health } from "./lib/health.ts";
import { limitedJson } from "./lib/json.ts";
import { createLogger, type Logger } from "./lib/log.ts";
import { createMetrics } from "./lib/metrics.ts";
import { Conflict, Problem, problems, TooManyRequests, Unauthorized } from "./lib/problem.ts";
import { runService } from "./lib/runner.ts";
import { MAX_TOKEN_SECONDS, TOKEN_AUDIENCE, TOKEN_ISSUER } from "./lib/tokens.ts";

// ── config ──────────────────────────────────────────────────────────────────
export const AuthConfig = Type.Object({
  PORT: Port(3001),
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
});
export type AuthConfig = typeof AuthConfig.static;

export { LOCKOUT };

// ── models ──────────────────────────────────────────────────────────────────
const Email = t.String({
  format: "email",
  maxLength: 254,
  error: "must be an email address",
  examples: ["ada@example.com"],
});
const Password = t.String({ minLength: 8, maxLength: 256, error: "must be 8 to 256 characters" });
export const Credentials = t.Object({ email: Email, password: Password });
const LoginBody = t.Object({ email: t.String({ maxLength: 254 }), password: t.String({ maxLength: 256 }) });
export const UserView = t.Object({ id: t.Integer(), email: t.String() });
export const TokenView = t.Object({
  token: t.String({ description: "a JWT to send as `Authorization: Bearer <token>`" }),
  expiresAt: t.String({ format: "date-time" }),
});
const Jwks = t.Object({ keys: t.Array(t.Record(t.String(), t.Unknown())) });

/** Each route's schemas and OpenAPI text, beside the models they use. */
const docs = {
  register: {
    body: Credentials,
    response: { 201: UserView, 409: Problem, 422: Problem },
    detail: { tags: ["auth"], summary: "Create an account" },
  },
  login: {
    body: t.Optional(LoginBody),
    response: { 200: TokenView, 401: Problem, 429: Problem },
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

// ── the app ─────────────────────────────────────────────────────────────────
export interface AuthDeps {
  config: AuthConfig;
  log?: Logger;
  signingKey?: SigningKey;
}

/**
 * auth owns MySQL, so it opens its own pool (nothing else may reach it) and closes it
 * in `close()`, which the runner calls after the HTTP server has stopped.
 */
export async function createAuth({ config, log = createLogger("auth", config.LOG_LEVEL), signingKey }: AuthDeps) {
  const pool = createPool({ uri: config.MYSQL_URL, timezone: "Z", connectionLimit: 10 });
  const key = signingKey ?? (await loadSigningKey(config, log));
  const accounts = accountStore(drizzle(pool), {
    memoryCost: config.ARGON2_MEMORY_KIB,
    timeCost: config.ARGON2_TIME_COST,
  });
  const app = authApp({ config, log, key, accounts, ping: () => pool.query("SELECT 1") });

  return {
    app,
    signingKey: key,
    /** Applies the migrations first when MIGRATE_ON_START is set (development, single replica). */
    async start() {
      if (!config.MIGRATE_ON_START) return;
      await migrateDatabase(config.MYSQL_URL);
      log.info({ event: "db.migrated" }, "migrations applied");
    },
    /** Nothing runs outside requests: the runner's HTTP stop lets those finish. */
    async stop() {},
    /** Ends the MySQL pool. */
    async close() {
      await pool.end();
    },
  };
}

export function normaliseEmail(email: string): string {
  return email.trim().toLowerCase();
}

interface AppParts {
  config: AuthConfig;
  log: Logger;
  key: SigningKey;
  accounts: ReturnType<typeof accountStore>;
  ping: () => Promise<unknown>;
}

/** auth's routes: each answers from the account store and the signing key. */
function authApp({ config, log, key, accounts, ping }: AppParts) {
  return new Elysia({ name: "auth" })
    .use(problems(log))
    .use(createMetrics("auth").plugin)
    .use(
      apiDocs({
        title: "m3dio auth",
        description: "Internal: registration, login and token signing. The public API is the gateway's.",
      }),
    )
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
    .use(health({ mysql: ping }))
    .onTransform(({ body }) => {
      // Normalise before validation, so " Ada@Example.COM " is ada@example.com everywhere.
      if (body && typeof body === "object" && "email" in body && typeof body.email === "string") {
        (body as { email: string }).email = normaliseEmail(body.email);
      }
    })
    .post(
      "/register",
      async ({ body, status }) => {
        try {
          const user = await accounts.register(body.email, body.password);
          log.info({ event: "user.registered", userId: user.id }, "user registered");
          return status(201, user);
        } catch (error) {
          if (error instanceof EmailTaken) throw new Conflict("an account with this email already exists");
          throw error;
        }
      },
      { parse: limitedJson(), ...docs.register },
    )
    .post(
      "/login",
      async ({ body, headers, tokens }) => {
        const { email, password } = credentialsOf(headers.authorization, body);
        const outcome = await accounts.login(email, password);
        if (outcome.kind === "locked") {
          log.warn({ event: "login.locked", email }, "login locked out");
          throw new TooManyRequests(
            "too many failed logins for this account; try again later",
            outcome.retryAfterSeconds,
          );
        }
        if (outcome.kind === "wrong") {
          log.info({ event: "login.failed", email }, "login failed");
          throw new Unauthorized("wrong email or password");
        }
        const { user } = outcome;
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

/** The login's credentials: HTTP Basic wins over a JSON body; neither is 401. */
function credentialsOf(
  authorization: string | undefined,
  body: { email?: string; password?: string } | null | undefined,
) {
  const credentials = basicCredentials(authorization) ?? body;
  if (!credentials?.email || !credentials.password) {
    throw new Unauthorized("send {email, password} as JSON or HTTP Basic credentials");
  }
  return { email: normaliseEmail(credentials.email), password: credentials.password };
}

/** `Authorization: Basic base64(email:password)` → credentials; anything else → undefined. */
function basicCredentials(header: string | undefined): { email: string; password: string } | undefined {
  const match = header?.match(/^Basic\s+([A-Za-z0-9+/=]+)\s*$/i);
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return undefined;
  return { email: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
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
