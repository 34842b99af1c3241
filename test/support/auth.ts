// Auth as the tests start it: the password hash at a cost a test can pay for every user,
// and limits no suite reaches by accident.
// Production hashes with argon2id at 64 MiB and two passes (auth.ts's defaults), some
// hundreds of milliseconds a hash here; tests register and log in hundreds of users, so
// they hash with the same algorithm at 1 MiB and one pass. test/auth.test.ts keeps one
// check of the production default.
// Every test user comes from 127.0.0.1 and suites register users in parallel, so the
// per-address rates and the hashing limit are set out of reach; test/auth-abuse.test.ts
// sets them low where it tests them.
import { AuthConfig } from "../../auth.ts";
import { parseConfig } from "../../lib/config.ts";

/** The hash cost for auth in tests, as environment variables (for auth as a process, too). */
export const TEST_HASH_COST = { ARGON2_MEMORY_KIB: "1024", ARGON2_TIME_COST: "1" } as const;
/** The hash cost and limits out of reach, as environment variables. */
export const TEST_AUTH_ENV = {
  ...TEST_HASH_COST,
  HASH_CONCURRENCY: "64",
  LOGIN_RATE_PER_MINUTE: "1000000",
  REGISTER_RATE_PER_HOUR: "1000000",
} as const;
/** The secret the test systems' gateway and auth share (GATEWAY_SECRET). */
export const TEST_GATEWAY_SECRET = "test-gateway-secret-0123456789";

/** Auth's config for a test: this MySQL database, silent logs, the cheap hash, no limits in reach; `overrides` win. */
export function authTestConfig(mysqlUrl: string, overrides: Record<string, string> = {}): AuthConfig {
  return parseConfig(AuthConfig, { MYSQL_URL: mysqlUrl, LOG_LEVEL: "silent", ...TEST_AUTH_ENV, ...overrides });
}
