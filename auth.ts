// auth: registration, login (JSON and HTTP Basic) and JWT signing. Owns MySQL.
// Tokens are signed with an asymmetric key whose public half is served as a JWKS,
// so the gateway verifies them locally without calling this service per request.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { jwt } from "@elysiajs/jwt";
import { Type } from "@sinclair/typebox";
import { and, count, eq, gt, lt, min } from "drizzle-orm";
import { drizzle } from "drizzle-orm/mysql2";
import { Elysia, t } from "elysia";
import * as jose from "jose";
import { createPool } from "mysql2/promise";
import { migrateDatabase } from "./db/migrate.ts";
import { loginAttempts, users } from "./db/schema.ts";
import { Flag, LogLevel, loadConfig, Port, Url } from "./lib/config.ts";
import { apiDocs } from "./lib/docs.ts";
import { health } from "./lib/health.ts";
import { limitedJson } from "./lib/json.ts";
import { createLogger, type Logger } from "./lib/log.ts";
import { createMetrics } from "./lib/metrics.ts";
import { Conflict, Problem, problems, TooManyRequests, Unauthorized } from "./lib/problem.ts";
import { stopServing } from "./lib/shutdown.ts";

// ── config ──────────────────────────────────────────────────────────────────
export const AuthConfig = Type.Object({
  PORT: Port(3001),
  LOG_LEVEL: LogLevel,
  MYSQL_URL: Url(["mysql"], "mysql://root@127.0.0.1:3306/m3dio", "a mysql:// URL"),
  MIGRATE_ON_START: Flag(false, "apply migrations at start"),
  JWT_PRIVATE_KEY: Type.Optional(Type.String({ minLength: 1, description: "signing key, PEM (PKCS#8) or JWK JSON" })),
  JWT_PRIVATE_KEY_FILE: Type.Optional(
    Type.String({ minLength: 1, description: "path to a file holding the signing key" }),
  ),
  JWT_TTL_SECONDS: Type.Integer({ minimum: 60, maximum: 7 * 24 * 3600, default: 3600, description: "token lifetime" }),
});
export type AuthConfig = typeof AuthConfig.static;

/** Failed logins allowed per email within the window before 429. */
export const LOCKOUT = { maxFailures: 5, windowMs: 15 * 60 * 1000 };

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

// ── signing keys ────────────────────────────────────────────────────────────
export interface SigningKey {
  alg: "EdDSA" | "ES256";
  kid: string;
  privateKey: jose.CryptoKey;
  publicJwk: jose.JWK;
}

/** The configured key (PEM or JWK, inline or from a file), or a fresh one for development. */
export async function loadSigningKey(config: AuthConfig, log: Logger): Promise<SigningKey> {
  const text =
    config.JWT_PRIVATE_KEY ?? (config.JWT_PRIVATE_KEY_FILE && readFileSync(config.JWT_PRIVATE_KEY_FILE, "utf8"));
  let privateKey: jose.CryptoKey;
  let alg: SigningKey["alg"];
  if (!text) {
    log.warn("JWT_PRIVATE_KEY is not set: generated a signing key for this process only; tokens die with it");
    alg = "EdDSA";
    privateKey = (await jose.generateKeyPair(alg, { extractable: true })).privateKey;
  } else if (text.trim().startsWith("{")) {
    const jwk = JSON.parse(text) as jose.JWK;
    alg = jwk.kty === "EC" ? "ES256" : "EdDSA";
    privateKey = (await jose.importJWK(jwk, alg, { extractable: true })) as jose.CryptoKey;
  } else {
    alg = text.includes("BEGIN EC PRIVATE KEY") ? "ES256" : await pemAlgorithm(text);
    privateKey = await jose.importPKCS8(text.trim(), alg, { extractable: true });
  }
  const { d: _secret, ...publicPart } = await jose.exportJWK(privateKey);
  const kid = await jose.calculateJwkThumbprint(publicPart);
  return { alg, kid, privateKey, publicJwk: { ...publicPart, kid, alg, use: "sig" } };
}

async function pemAlgorithm(pem: string): Promise<SigningKey["alg"]> {
  try {
    await jose.importPKCS8(pem.trim(), "EdDSA");
    return "EdDSA";
  } catch {
    return "ES256";
  }
}

// ── the app ─────────────────────────────────────────────────────────────────
export interface AuthDeps {
  config: AuthConfig;
  log?: Logger;
  signingKey?: SigningKey;
}

export async function createAuth({ config, log = createLogger("auth", config.LOG_LEVEL), signingKey }: AuthDeps) {
  if (config.MIGRATE_ON_START) {
    await migrateDatabase(config.MYSQL_URL);
    log.info("migrations applied");
  }
  const pool = createPool({ uri: config.MYSQL_URL, timezone: "Z", connectionLimit: 10 });
  const db = drizzle(pool);
  const key = signingKey ?? (await loadSigningKey(config, log));
  // Unknown emails are checked against this hash so they cost as much as a wrong password.
  const dummyHash = await Bun.password.hash(randomUUID(), "argon2id");
  const metrics = createMetrics("auth");

  /**
   * Records this login attempt as a failure before the password is checked, so a
   * burst of parallel guesses is counted at once and only the first few ever reach
   * the (deliberately slow) hash check. Every attempt counts, also while locked: the
   * lock lifts a window after the guessing stops. Answers the seconds to wait when locked.
   */
  async function recordAttempt(email: string, now: Date): Promise<number | undefined> {
    const since = new Date(now.getTime() - LOCKOUT.windowMs);
    await db.insert(loginAttempts).values({ email, attemptedAt: now });
    // Rows older than the window no longer count for anything.
    await db.delete(loginAttempts).where(and(eq(loginAttempts.email, email), lt(loginAttempts.attemptedAt, since)));
    const [row] = await db
      .select({ attempts: count(), oldest: min(loginAttempts.attemptedAt) })
      .from(loginAttempts)
      .where(and(eq(loginAttempts.email, email), gt(loginAttempts.attemptedAt, since)));
    if ((row?.attempts ?? 0) <= LOCKOUT.maxFailures) return undefined;
    return ((row?.oldest ?? now).getTime() + LOCKOUT.windowMs - now.getTime()) / 1000;
  }

  const app = new Elysia({ name: "auth" })
    .use(problems(log))
    .use(metrics.plugin)
    .use(
      apiDocs({
        title: "m3dio auth",
        description: "Internal: registration, login and token signing. The public API is the gateway's.",
      }),
    )
    .use(jwt({ name: "tokens", secret: key.privateKey, alg: key.alg, kid: key.kid }))
    .use(health({ mysql: () => pool.query("SELECT 1") }))
    .onTransform(({ body }) => {
      // Normalise before validation, so " Ada@Example.COM " is ada@example.com everywhere.
      if (body && typeof body === "object" && "email" in body && typeof body.email === "string") {
        (body as { email: string }).email = normaliseEmail(body.email);
      }
    })
    .post(
      "/register",
      async ({ body, status }) => {
        const passwordHash = await Bun.password.hash(body.password, "argon2id");
        try {
          const [inserted] = await db.insert(users).values({ email: body.email, passwordHash }).$returningId();
          log.info({ userId: inserted!.id }, "user registered");
          return status(201, { id: inserted!.id, email: body.email });
        } catch (error) {
          if (isDuplicateKey(error)) throw new Conflict("an account with this email already exists");
          throw error;
        }
      },
      {
        parse: limitedJson(),
        body: Credentials,
        response: { 201: UserView, 409: Problem, 422: Problem },
        detail: { tags: ["auth"], summary: "Create an account" },
      },
    )
    .post(
      "/login",
      async ({ body, headers, tokens }) => {
        const credentials = basicCredentials(headers.authorization) ?? body;
        if (!credentials?.email || !credentials.password) {
          throw new Unauthorized("send {email, password} as JSON or HTTP Basic credentials");
        }
        const email = normaliseEmail(credentials.email);
        const now = new Date();
        const lockedFor = await recordAttempt(email, now);
        if (lockedFor !== undefined) {
          log.warn({ email }, "login locked out");
          throw new TooManyRequests("too many failed logins for this account; try again later", lockedFor);
        }
        const [user] = await db.select().from(users).where(eq(users.email, email)).limit(1);
        const valid = await Bun.password.verify(credentials.password, user?.passwordHash ?? dummyHash);
        if (!user || !valid) {
          log.info({ email }, "login failed");
          throw new Unauthorized("wrong email or password");
        }
        await db.delete(loginAttempts).where(eq(loginAttempts.email, email));
        const token = await tokens.sign({
          sub: String(user.id),
          email: user.email,
          jti: randomUUID(),
          exp: `${config.JWT_TTL_SECONDS}s`,
        });
        log.info({ userId: user.id }, "login");
        return { token, expiresAt: new Date(jose.decodeJwt(token).exp! * 1000).toISOString() };
      },
      {
        parse: limitedJson(),
        body: t.Optional(LoginBody),
        response: { 200: TokenView, 401: Problem, 429: Problem },
        detail: {
          tags: ["auth"],
          summary: "Log in with JSON credentials or HTTP Basic; answers a bearer token",
          security: [{}, { basic: [] }],
        },
      },
    )
    .get("/.well-known/jwks.json", () => ({ keys: [key.publicJwk] }), {
      response: Jwks,
      detail: { tags: ["auth"], summary: "The public keys that verify this service's tokens" },
    });

  return {
    app,
    signingKey: key,
    async close() {
      await pool.end();
    },
  };
}

export function normaliseEmail(email: string): string {
  return email.trim().toLowerCase();
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

function isDuplicateKey(error: unknown): boolean {
  for (let cause: unknown = error; cause; cause = (cause as { cause?: unknown }).cause) {
    if ((cause as { code?: string }).code === "ER_DUP_ENTRY") return true;
  }
  return false;
}

// ── start and graceful stop ─────────────────────────────────────────────────
if (import.meta.main) {
  const config = loadConfig(AuthConfig);
  const log = createLogger("auth", config.LOG_LEVEL);
  const auth = await createAuth({ config, log });
  auth.app.listen({ port: config.PORT, hostname: "0.0.0.0" });
  log.info({ port: auth.app.server?.port }, "auth listening");
  const stop = async (signal: string) => {
    log.info({ signal }, "stopping");
    await stopServing(auth.app, { log }); // lets requests in flight finish
    await auth.close();
    process.exit(0);
  };
  process.once("SIGTERM", () => void stop("SIGTERM"));
  process.once("SIGINT", () => void stop("SIGINT"));
}
